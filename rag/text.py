"""Sentence spans and content words: the shared vocabulary of chunking,
extractive answering and citation verification.

Spans are ``(start, end)`` offsets into the given text with surrounding
white space excluded, so ``text[start:end]`` is the sentence itself.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "gen", "lt", "col", "maj", "capt", "cpt", "sgt", "adm",
    "sen", "rep", "gov", "pres", "st", "jr", "sr", "no", "vs", "etc", "inc", "co", "corp",
    "ltd", "dept", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
    "nov", "dec", "approx", "fig", "e.g", "i.e", "u.s", "u.k", "u.n", "a.m", "p.m",
}
# A sentence ends at . ! ? (plus closing quotes/brackets), before white space
# straight before a capital letter ("(June 2-4).The United States"), or
# before a citation marker glued to it ("… France.[1] Next").
_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|[A-Z“\"]|\[\d|$)")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves said says say according one two new
    """.split()
)

_stemmer = Stemmer.Stemmer("english")


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the period at ``dot`` closes an abbreviation or an initial."""
    start = dot
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "."):
        start -= 1
    word = text[start:dot].lower()
    if not word:
        return False
    if word in _ABBREVIATIONS:
        return True
    # Initials and dotted acronyms: "J.", "U.S.", "D.C."
    return len(word.replace(".", "")) <= 2 and word.replace(".", "").isalpha() and (
        len(word) == 1 or "." in word
    ) and word[0].isalpha() and (len(word) == 1 or word[0].isupper() or "." in word)


def sentence_spans(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Split ``text`` into sentence spans; line breaks always end a sentence."""
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text):
        line_start = line.start()
        segment = line.group()
        cursor = 0
        for match in _END.finditer(segment):
            first_dot = match.start()
            if segment[first_dot] == "." and match.group().startswith(".") and len(match.group().rstrip("\"'”’)]")) == 1:
                if _is_abbreviation(segment, first_dot):
                    continue
            _append_trimmed(spans, segment, cursor, match.end(), line_start + offset)
            cursor = match.end()
        _append_trimmed(spans, segment, cursor, len(segment), line_start + offset)
    return spans


# A credit or date line that opens a paragraph: "(Deutsche Welle Chinese Website) The annual …", "【By Liu Bai,
# Observer News】On August 29, …", "WASHINGTON (Reuters) - The …". It is not part of the sentence a quote cites.
_CREDIT = re.compile(r"^\s*(?:[(\[【][^)\]】\n]{2,60}[)\]】]\s*|[A-Z][A-Z .,'-]{2,40}(?:,\s*[A-Z][a-z]+\.? \d{1,2})?"
                     r"\s*\([^)\n]{2,30}\)\s*[-–—]+\s*)(?=[A-Z“\"‘'])")


def _append_trimmed(spans: list[tuple[int, int]], segment: str, start: int, end: int, base: int) -> None:
    piece = segment[start:end]
    if start == 0:
        credit = _CREDIT.match(piece)
        if credit:
            start, piece = credit.end(), piece[credit.end():]
    stripped = piece.strip()
    if not stripped or not any(ch.isalnum() for ch in stripped):
        return
    lead = len(piece) - len(piece.lstrip())
    spans.append((base + start + lead, base + start + lead + len(stripped)))


def words(text: str) -> list[str]:
    """Lower-cased word tokens (possessive 's dropped)."""
    return [w[:-2] if w.endswith(("'s", "’s")) else w for w in _WORD.findall(text.lower())]


def fold_accents(word: str) -> str:
    """The word without its accents ("Kraków" → "Krakow"), as the keyword index (FTS5's unicode61 tokenizer)
    folds them, so both sides agree on what a term is: a Latin letter with one diacritic loses it; other
    scripts ("й", "έ") and letters with two ("ệ") keep theirs."""
    if word.isascii():
        return word
    return "".join(_fold_letter(ch) for ch in word)


@lru_cache(maxsize=4096)
def _fold_letter(ch: str) -> str:
    decomposed = unicodedata.normalize("NFD", ch)
    if len(decomposed) == 2 and decomposed[0].isascii() and decomposed[0].isalpha() and unicodedata.combining(decomposed[1]):
        return decomposed[0]
    return ch


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The word's stem, accents folded, so "Krakow" and "Kraków" are one term."""
    return _stemmer.stemWord(fold_accents(word))


def content_terms(text: str) -> list[str]:
    """Stemmed words that carry meaning (stopwords and one-letter words dropped)."""
    return list(_content_terms(text))


@lru_cache(maxsize=8192)
def _content_terms(text: str) -> tuple[str, ...]:
    # cached: the same passages and sentences are read again by every question that retrieves them (8192
    # entries, ~20 MB with passage-long keys: a bounded cache still fills over a long run, so keep it small)
    return tuple(stem(w) for w in words(text) if w not in STOPWORDS and (len(w) > 1 or w.isdigit()))


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


MIN_ALPHA_WORDS = 4
_TERMINAL = re.compile(r"[.!?][\"'”’)\]]*$")


def is_sentence(text: str) -> bool:
    """A full sentence: enough words and closing punctuation (headlines, date lines and captions have none)."""
    return bool(_TERMINAL.search(text)) and len(re.findall(r"[^\W\d_]{2,}", text)) >= MIN_ALPHA_WORDS
