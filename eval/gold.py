"""Gold sets: JSONL lines ``{id, question, answer, must_include, sources, type, answerable}``.

Loading validates every line and reports all problems at once (line number,
field, what is wrong) instead of stopping at the first. Gold quotes are
located in the stored document text by a whitespace-normalised match; a quote
that cannot be found is a gold-set problem, reported, never silently skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rag.errors import InvalidInputError


@dataclass(frozen=True)
class GoldSource:
    doc: str
    quote: str


@dataclass
class GoldItem:
    id: str
    question: str
    answer: str
    must_include: list[list[str]]
    sources: list[GoldSource]
    type: str
    answerable: bool
    line: int = 0
    spans: list[tuple[str, int, int]] = field(default_factory=list)  # located sources: (doc, start, end)


class GoldSetError(InvalidInputError):
    code = "invalid_gold_set"


def _problem(line: int, message: str) -> str:
    return f"line {line}: {message}"


def _check_item(raw: object, line: int) -> tuple[GoldItem | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [_problem(line, "expected a JSON object")]
    problems = []
    for name, kind in (("question", str), ("answerable", bool)):
        if not isinstance(raw.get(name), kind):
            problems.append(_problem(line, f"'{name}' must be a {kind.__name__}"))
    if isinstance(raw.get("question"), str) and not raw["question"].strip():
        problems.append(_problem(line, "'question' is empty"))
    groups = raw.get("must_include", [])
    if not (isinstance(groups, list) and all(isinstance(g, list) and g and all(isinstance(a, str) and a for a in g)
                                             for g in groups)):
        problems.append(_problem(line, "'must_include' must be a list of non-empty lists of strings"))
    sources = raw.get("sources", [])
    if not (isinstance(sources, list) and all(isinstance(s, dict) and isinstance(s.get("doc"), str)
                                              and isinstance(s.get("quote"), str) and s["quote"].strip()
                                              for s in sources)):
        problems.append(_problem(line, "'sources' must be a list of {doc, quote} with non-empty strings"))
    for name in ("id", "answer", "type"):
        if name in raw and not isinstance(raw[name], str):
            problems.append(_problem(line, f"'{name}' must be a string"))
    if problems:
        return None, problems
    return GoldItem(
        id=raw.get("id") or f"line{line}", question=raw["question"], answer=raw.get("answer", ""),
        must_include=groups, sources=[GoldSource(s["doc"], s["quote"]) for s in sources],
        type=raw.get("type") or "untyped", answerable=raw["answerable"], line=line), []


def load_gold(path: Path) -> list[GoldItem]:
    """Every item of a gold file, or :class:`GoldSetError` listing every bad line."""
    path = Path(path)
    if not path.is_file():
        raise GoldSetError(f"no gold file at {path}", path=str(path))
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GoldSetError(f"{path}: not UTF-8 (byte {exc.start})", path=str(path)) from None
    items, problems, seen_ids = [], [], set()
    # Split on newlines only: JSON strings may hold U+2028, U+0085 or form feeds.
    for number, text in enumerate(content.split("\n"), 1):
        if not text.strip():
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(_problem(number, f"not JSON ({exc.msg})"))
            continue
        item, found = _check_item(raw, number)
        problems.extend(found)
        if item is not None:
            if item.id in seen_ids:
                problems.append(_problem(number, f"duplicate id {item.id!r}"))
            seen_ids.add(item.id)
            items.append(item)
    if problems:
        raise GoldSetError(f"{path}: {len(problems)} problem(s): " + "; ".join(problems[:10]),
                           problems=problems)
    if not items:
        raise GoldSetError(f"{path}: no gold items", path=str(path))
    return items


def locate_quote(text: str, quote: str) -> tuple[int, int] | None:
    """Offsets of ``quote`` in ``text``, matching runs of white space loosely."""
    exact = text.find(quote)
    if exact >= 0:
        return exact, exact + len(quote)
    words = quote.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    match = re.search(pattern, text)
    return (match.start(), match.end()) if match else None


def locate_sources(items: list[GoldItem], document_text: Callable[[str], str | None]) -> list[str]:
    """Fill ``item.spans``; returns the problems (unknown documents, quotes not found)."""
    problems = []
    for item in items:
        item.spans = []
        for source in item.sources:
            text = document_text(source.doc)
            if text is None:
                problems.append(f"{item.id}: document {source.doc!r} is not in the index")
                continue
            span = locate_quote(text, source.quote)
            if span is None:
                problems.append(f"{item.id}: quote not found in {source.doc}: {source.quote[:60]!r}")
                continue
            item.spans.append((source.doc, *span))
    return problems
