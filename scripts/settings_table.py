"""Print the configuration table for README from the Settings model itself."""

from __future__ import annotations

from pydantic import BaseModel

from rag.settings import REPO_ROOT, Settings


def _default(value: object) -> str:
    if value is None:
        return "(unset)"
    text = str(value)
    return text.replace(str(REPO_ROOT), "<repo>")


def rows() -> list[tuple[str, str, str]]:
    out = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, BaseModel):
            for sub, subfield in type(default).model_fields.items():
                out.append((f"RAG_{name.upper()}_{sub.upper()}", _default(subfield.default), subfield.description or ""))
        else:
            out.append((f"RAG_{name.upper()}", _default(default), field.description or ""))
    return out


def table() -> str:
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    lines += [f"| `{env}` | `{default}` | {desc} |" for env, default, desc in rows()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
