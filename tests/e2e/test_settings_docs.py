"""Docs match code: README's configuration table is the Settings model, and every variable in it works."""

from __future__ import annotations

import importlib.util

import pytest

from rag.settings import REPO_ROOT, Settings

spec = importlib.util.spec_from_file_location("settings_table", REPO_ROOT / "scripts" / "settings_table.py")
settings_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(settings_table)

SAMPLE = {"str": "x-sample", "bool": "true"}


def test_readme_has_the_current_table():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert settings_table.table() in readme, "regenerate with: .venv/bin/python scripts/settings_table.py"


@pytest.mark.parametrize("env", [row[0] for row in settings_table.rows()])
def test_every_documented_variable_is_read(env, monkeypatch):
    parts = env.removeprefix("RAG_").lower()
    fields = Settings.model_fields
    if parts in fields:
        group, name = None, parts
        field = fields[name]
    else:
        group, name = parts.split("_", 1)
        field = type(fields[group].default).model_fields[name]
    annotation = str(field.annotation)
    kind = next((k for k in ("bool", "float", "int") if k in annotation), "str")
    if "Literal" in annotation:
        value = field.annotation.__args__[-1]
    elif "Path" in annotation:
        value = "/tmp/sample-dir"
    elif kind == "int":
        value = field.default + 1
    elif kind == "float":
        value = 0.5 if field.default is None else round(field.default * 0.5 + 0.01, 3)
    elif kind == "bool":
        value = str(not field.default).lower()
    else:
        value = SAMPLE[kind]
    monkeypatch.setenv(env, str(value))
    settings = Settings()
    got = getattr(getattr(settings, group) if group else settings, name)
    got = got.get_secret_value() if hasattr(got, "get_secret_value") else got
    assert str(got).lower() == str(value).lower()
    assert got != field.default


def test_readme_documents_every_answerability_feature():
    from rag.answerability.features import FEATURES

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert [f for f in FEATURES if f"`{f}`" not in readme] == []
