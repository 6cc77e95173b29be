"""Document metadata read from the stored text: title, date, source URL."""

from __future__ import annotations

import re
from datetime import date

from rag.text import sentence_spans

_MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december".split(), 1)}
_ISO = re.compile(r"\b((?:19|20)\d\d)-(\d\d)-(\d\d)\b")
_LONG = re.compile(r"\b(" + "|".join(_MONTHS) + r")\s+(\d{1,2}),?\s+((?:19|20)\d\d)\b", re.IGNORECASE)
_LONG_DMY = re.compile(r"\b(\d{1,2})\s+(" + "|".join(_MONTHS) + r")\s+((?:19|20)\d\d)\b", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s<>\"')\]]+")


def find_date(text: str, head_chars: int = 600) -> str | None:
    """The document's own date: the first one stated near the top on a date line ("date 2023-05-30",
    "Published May 30, 2023 by staff") or as a dateline opening a paragraph ("WASHINGTON, May 30, 2023 — …").
    A date inside prose is something else's ("Abraham Lincoln (February 12, 1809 – April 15, 1865) was…"),
    and the answerability judgement reads this one as when the document was written."""
    head = text[:head_chars]
    candidates: list[tuple[int, date]] = []
    for m in _ISO.finditer(head):
        if _on_date_line(head, m):
            _try_add(candidates, m.start(), int(m.group(1)), int(m.group(2)), int(m.group(3)))
    for m in _LONG.finditer(head):
        if _on_date_line(head, m):
            _try_add(candidates, m.start(), int(m.group(3)), _MONTHS[m.group(1).lower()], int(m.group(2)))
    for m in _LONG_DMY.finditer(head):
        if _on_date_line(head, m):
            _try_add(candidates, m.start(), int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1)))
    if not candidates:
        return None
    return min(candidates)[1].isoformat()


DATE_LINE_WORDS = 12  # a line this short that holds a date is a date line or a byline, not prose
DATELINE_CHARS = 40  # a dateline's date ends this near the start of its paragraph, and a dash follows it


def _on_date_line(text: str, m: re.Match[str]) -> bool:
    line_start = text.rfind("\n", 0, m.start()) + 1
    line_end = text.find("\n", m.end())
    line = text[line_start:line_end if line_end != -1 else len(text)]
    if len(line.split()) <= DATE_LINE_WORDS:
        return True
    opening = text[line_start:m.start()]
    return (m.end() - line_start <= DATELINE_CHARS and "(" not in opening
            and re.match(r"\s*[—–-]", text[m.end():]) is not None)


def _try_add(out: list[tuple[int, date]], pos: int, y: int, m: int, d: int) -> None:
    try:
        out.append((pos, date(y, m, d)))
    except ValueError:
        pass


def find_url(text: str) -> str | None:
    m = _URL.search(text)
    return m.group().rstrip(".,;") if m else None


def guess_title(text: str, max_chars: int = 120) -> str:
    """The first line that reads like a headline (at least three words), shortened."""
    for line in text.split("\n"):
        line = line.strip().lstrip("#").strip()
        if len(re.findall(r"[^\W\d_]{2,}", line)) < 3:
            continue
        spans = sentence_spans(line)
        first = line[spans[0][0]:spans[0][1]] if spans else line
        if len(first) > max_chars:
            first = first[:max_chars].rsplit(" ", 1)[0] + "…"
        return first
    return ""
