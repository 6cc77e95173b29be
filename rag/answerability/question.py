"""What a question asks for, read from its wording: the kind of answer (a number, a date, a name, a length of
time, a cause), its names and years, its polarity and degree, its parts, and its words weighed by IDF over the
index (:class:`QuestionTerms`). Plain English function words and patterns, the same for any corpus."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Protocol, Sequence

from rag.text import STOPWORDS, content_terms, fold_accents, stem, words


class CorpusStats(Protocol):
    """What the judgement needs to know of the whole index (the docstore provides it)."""

    def approximate_chunk_count(self) -> int: ...

    def term_document_counts(self, terms: Iterable[str], cap: int = 1000) -> dict[str, int]: ...


_NUMBER_WORDS = frozenset("""zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred
hundreds thousand thousands million millions billion billions trillion dozen dozens half quarter percent
once twice""".split())
_MONTHS = frozenset("""january february march april may june july august september october november december
spring summer autumn fall winter century centuries decade decades""".split())
YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_DIGIT = re.compile(r"\d")

_OPENERS = STOPWORDS | frozenset("""however meanwhile although though yet still instead later earlier last next
many several since while another others according""".split())
_TYPE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("date", re.compile(r"\b(when|what (year|years|date|day|month|century|decade|time|period|era)|"
                        r"which (year|years|date|day|month|century|decade)|how long ago|since when)\b", re.I)),
    ("count", re.compile(r"\b(how (many|much)|what (percentage|percent|proportion|share|number|amount|fraction)|"
                         r"what (was|is) the (population|number|amount|cost|price))\b", re.I)),
    ("number", re.compile(r"\b(how (long|old|far|large|big|high|tall|deep|often|fast)|what (size)|"
                          r"what (was|is) the (size))\b", re.I)),
    ("name", re.compile(r"\b(who|whom|whose|where|which (city|country|town|state|company|person|people|"
                        r"organi[sz]ation|university|team|party|group|river|region|nation)|what (city|country|"
                        r"town|state|company|organi[sz]ation|university|team|party|river|region|nation))\b", re.I)),
]


_ASKS_HOW_LONG = re.compile(r"\b(how long|for how many (seconds|minutes|hours|days|weeks|months|years)|"
                            r"what (was|is) the (duration|length of time))\b(?! ago)", re.I)
_HOW_LONG = re.compile(
    r"\b(\d[\d,.]*|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|"
    r"fifty|sixty|hundreds?|thousands?|several|few|many|some|half an?)[\s-]+(more\s+|full\s+)?"
    r"(seconds?|minutes?|hours?|days?|nights?|weeks?|fortnights?|months?|years?|decades?|centur(y|ies)|"
    r"km|kilomet(re|er)s?|miles?|met(re|er)s?|m|feet|foot|ft|yards?|inch(es)?|cm|mm)\b", re.I)


def asks_how_long(question: str) -> bool:
    """Does the question ask how long ("How long did the call last?", "How long is the river?"; not "how long
    ago", a date)?"""
    return bool(_ASKS_HOW_LONG.search(question))


def states_how_long(text: str) -> bool:
    """Does ``text`` state a length of time or distance ("about 45 minutes", "almost a month", "a 45-minute
    call", "1,047 km")? A date or a count is not one."""
    return bool(_HOW_LONG.search(text))


def expected_type(question: str) -> str | None:
    """The kind of answer the wording asks for, if it names one: number, date or name."""
    for kind, pattern in _TYPE_PATTERNS:
        if pattern.search(question):
            return kind
    return None


def type_present(kind: str, text: str, question_words: set[str]) -> bool:
    """Does ``text`` hold an answer of ``kind`` that is not just the question's own words?"""
    tokens = re.findall(r"[^\W_]+", text)
    novel = [t for t in tokens if t.lower() not in question_words]
    if kind == "number":
        return any(_DIGIT.search(t) or t.lower() in _NUMBER_WORDS for t in novel)
    if kind == "count":  # how many, how much: a year is not a count
        return any((_DIGIT.search(t) and not YEAR.fullmatch(t)) or t.lower() in _NUMBER_WORDS for t in novel)
    if kind == "date":
        return any(YEAR.fullmatch(t) or t.lower() in _MONTHS or (_DIGIT.search(t) and len(t) <= 4) for t in novel)
    # a name: a capitalised word (one that opens the sentence only when it is not a common opener)
    return any(t[0].isupper() and (i > 0 or t.lower() not in _OPENERS)
               for i, t in enumerate(tokens) if t.lower() not in question_words)


def _names_as_written(question: str) -> list[str]:
    """Capitalised words past the first and tokens with digits, possessive dropped, stopwords left out."""
    out = []
    for i, token in enumerate(re.findall(r"[^\W_]+(?:['’][^\W_]+)*", question)):
        word = re.sub(r"['’]s$", "", token)
        if word.lower() not in STOPWORDS and (_DIGIT.search(word) or (i > 0 and word[0].isupper())):
            out.append(word)
    return out


def question_names(question: str) -> list[str]:
    """Names and numbers the question mentions (capitalised words past the first, tokens with digits), stemmed."""
    return list(dict.fromkeys(stem(word.lower()) for word in _names_as_written(question)))


def named_words(question: str) -> dict[str, str]:
    """The things the question names by a word: its names (see :func:`question_names`) leaving out acronyms
    ("US", "AAA": as often written out) and numbers; stem → the word as written."""
    out: dict[str, str] = {}
    for word in _names_as_written(question):
        if not _DIGIT.search(word) and not (len(word) > 1 and word.isupper()):
            out.setdefault(stem(word.lower()), word)
    return out


_CAUSE_QUESTION = re.compile(r"^\s*(why|how come)\b|\b(reasons?|causes?|caused|purpose)\b", re.I)
# Plain English connectives that state a cause or purpose (not a list tuned on one corpus: the model learns
# their weight from every gold set, the Wikipedia one included).
_CAUSAL = re.compile(r"\b(because|due to|owing to|as a result|caused?|causing|led to|leads? to|in order to|so that|"
                     r"therefore|thus|hence|consequently|since|reasons?|cited|citing|given that|resulted)\b", re.I)


def question_asks_cause(question: str) -> bool:
    return bool(_CAUSE_QUESTION.search(question))


def states_cause(text: str) -> bool:
    """Does ``text`` hold a causal connective ("because", "due to", "led to", …)?"""
    return bool(_CAUSAL.search(text))


# Polarity and degree: SQuAD 2.0's unanswerable questions are often an answerable one turned around ("What is
# *not* prohibited…", "the *rarest* cause…" of a text that says "prohibited", "common causes"). Plain English
# function words, the same for any corpus; the model learns how much a mismatch counts.
_NEGATION = re.compile(r"\b(not|never|no|none|neither|nor|without|cannot|lack|lacks|lacked|fail|fails|failed)\b|n['’]t\b",
                       re.I)
_DEGREE = re.compile(r"\b(most|least|more|less|fewer|fewest|only|first|highest|lowest|largest|smallest|"
                     r"biggest|greatest|oldest|newest|youngest|earliest|latest|longest|shortest|best|worst|"
                     r"rarest|commonest|sole|[a-z]{3,}(?:est|er)\s+than)\b", re.I)


def negated(text: str) -> bool:
    return bool(_NEGATION.search(text))


def degree_words(text: str) -> set[str]:
    """Superlatives, comparatives and "only"/"first": words that pick one thing out of many."""
    return {m.group(0).lower().split()[0] for m in _DEGREE.finditer(text)}


# A swapped value: SQuAD's adversarial questions are also made by putting another name, year, month or
# ordinal where the answerable question had its own ("in *July* 1755" of a text that says "in June 1755").
_TOKEN = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")
_ORDINAL = re.compile(r"\d+(?:st|nd|rd|th)", re.I)
_CALENDAR = frozenset("january february march april may june july august september october november december".split())


def value_kind(token: str, first: bool = False) -> str | None:
    """The kind of specific value a word is (year, number, ordinal, month, name), or None for any other word.
    Acronyms are left out: "US", "EU" and "GM" are as often written out ("United States") as swapped."""
    if YEAR.fullmatch(token):
        return "year"
    if _ORDINAL.fullmatch(token):
        return "ordinal"
    if token.isdigit():
        return "number"
    if not token[0].isupper() or (len(token) > 1 and token.isupper()):
        return None
    if token.lower() in _CALENDAR:
        return "month"
    return None if first and token.lower() in _OPENERS else "name"


@lru_cache(maxsize=65536)
def _base(token: str) -> str:
    return stem(_plain(token))


def _plain(token: str) -> str:
    """Lower case, no possessive, no accents: "Beauséjour's" → "beausejour"."""
    return fold_accents(re.sub(r"['’]s$", "", token.lower()))


def spelt_alike(a: str, b: str) -> bool:
    """One name spelt two ways ("Dusquesne"/"Duquesne", "Fenghe"/"Fenge"): at most one letter added, dropped
    or changed. Not a swap."""
    a, b = _plain(a), _plain(b)
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), len(a))
    return a[i + (len(a) == len(b)):] == b[i + 1:]


def value_swapped(question_tokens: Sequence[str], text: str) -> bool:
    """A name, year, number, ordinal or month of the question is missing from ``text``, which has another of
    the same kind in its place: beside the same neighbouring word ("the *German* Ghetto Uprising" / "the
    *Warsaw* Ghetto Uprising", "the end of the *20th* century" / "the *19th* century")."""
    return value_swap(question_tokens, text) is not None


def value_swap(question_tokens: Sequence[str], text: str) -> tuple[str, str] | None:
    """The swap :func:`value_swapped` finds, as (the question's words, the text's words), each the value with
    its neighbour in reading order: ("German Ghetto", "Warsaw Ghetto"); None when there is none."""
    values = [(i, kind) for i, kind in enumerate(value_kind(w, i == 0) for i, w in enumerate(question_tokens))
              if kind is not None]
    if not values:
        return None
    tokens = _TOKEN.findall(text)
    bases = [_base(t) for t in tokens]
    where: dict[str, list[int]] = {}
    for k, b in enumerate(bases):
        where.setdefault(b, []).append(k)
    asked = [_base(t) for t in question_tokens]
    for i, kind in values:
        word = question_tokens[i]
        if asked[i] in where:
            continue
        for step in (-1, 1):  # the neighbour before the value, then the one after it
            j = i + step
            if not 0 <= j < len(asked) or asked[j] in STOPWORDS:
                continue
            for k in where.get(asked[j], ()):
                m = k - step  # where the value sits beside that neighbour in the text
                if (0 <= m < len(tokens) and bases[m] not in asked and value_kind(tokens[m], m == 0) == kind
                        and not (kind == "name" and spelt_alike(tokens[m], word))):
                    asked_words = (question_tokens[j], word) if step == -1 else (word, question_tokens[j])
                    found_words = (tokens[k], tokens[m]) if step == -1 else (tokens[m], tokens[k])
                    return " ".join(asked_words), " ".join(found_words)
    return None


@dataclass
class QuestionTerms:
    """The question's words with their IDF over the whole index."""

    stems: dict[str, float]  # stem → IDF (the largest over the words sharing it)
    unknown: set[str]  # stems the index does not contain
    names: list[str]
    words: set[str]  # lower-cased raw words (for "beyond the question's words")
    years: set[str]
    log_n: float
    focus: list[str] = field(default_factory=list)  # stems of the words the wh-phrase asks about
    category: set[str] = field(default_factory=set)  # stems naming the kind of answer ("outlet", "role")
    wh_modifiers: set[str] = field(default_factory=set)  # "how *many*", "how *much*": part of the question form
    bigrams: set[tuple[str, str]] = field(default_factory=set)
    as_written: dict[str, str] = field(default_factory=dict)  # stem → the word as the question spells it
    tokens: list[str] = field(default_factory=list)  # the question's words in order, as written
    named: dict[str, str] = field(default_factory=dict)  # things named by a word (see named_words): stem → word

    @classmethod
    def of(cls, question: str, stats: CorpusStats | None) -> "QuestionTerms":
        raw = [w for w in dict.fromkeys(words(question)) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]
        n = max(stats.approximate_chunk_count(), 1) if stats is not None else 1
        counts = stats.term_document_counts(raw) if stats is not None else {}
        stems: dict[str, float] = {}
        unknown: set[str] = set()
        for w in raw:
            df = counts.get(w, 0)
            idf = math.log(1 + (n + 1) / (0.5 + df))
            s = stem(w)
            stems[s] = max(stems.get(s, 0.0), idf)
            if stats is not None and df == 0:
                unknown.add(s)
        terms = content_terms(question)
        return cls(stems=stems, unknown=unknown, names=question_names(question), words=set(words(question)),
                   years=set(YEAR.findall(question)), log_n=math.log(2 + n), focus=question_focus(question),
                   category=question_category(question),
                   wh_modifiers={stem(w.lower()) for w in re.findall(r"\bhow\s+(\w+)", question, re.I)},
                   bigrams=set(zip(terms, terms[1:])), as_written=as_written(question),
                   tokens=_TOKEN.findall(question), named=named_words(question))


_WH = re.compile(r"\b(what|which|who|whom|whose|where|when|why|how(?: (?:many|much|long|old|far|often))?)\b", re.I)


_CATEGORY = re.compile(r"\b(?:which|what)\s+((?:kinds?|types?|sorts?)\s+of\s+)?((?:[^\W\d_][\w'’-]*\s+){0,2}?[^\W\d_][\w'’-]*)"
                       r"(?=\s+(?:did|does|do|was|were|is|are|has|have|had|can|could|would|will|kept|made|led|"
                       r"[a-z]+ed)\b)", re.I)


def question_category(question: str) -> set[str]:
    """Words that name the kind of thing asked for ("which *news outlet* reported", "what *role* did he play"):
    the text names an instance ("Nikkei Asia"), rarely the category, so their absence says little."""
    out: set[str] = set()
    for match in _CATEGORY.finditer(question):
        out |= set(content_terms(match.group(2)))
    return out


_WH_WORD = r"(?:(?:with|to|for|by|from|in|at|of|on)\s+)?(?:who|whom|whose|what|when|where|why|which|how)\b"
_AUXILIARY = r"\s+(?:(?:long|many|much|often|far|old)\s+)?(?:do|does|did|is|are|was|were|has|have|had|will|would|can|could)\b"
# a new part: after a question mark; after ", and" / "; but" before a wh-word; after a bare "and" only when the
# wh-word opens a clause ("and how long did …", not "T-cells and what species?")
_PART_BREAK = re.compile(rf"\?\s+(?=\w)|[,;]\s*(?:and|but|or)\s+(?={_WH_WORD})|\s+(?:and|but|or)\s+(?={_WH_WORD}{_AUXILIARY})",
                         re.I)
_LEADING_WH = re.compile(r"^\s*(?:(?:with|to|for|by|from|in|at|of|on)\s+)?(?:who|whom|whose|what|when|where|why|"
                         r"which|how(?:\s+(?:many|much|long|old|far|often))?)\b\s*", re.I)


def question_parts(question: str) -> list[str]:
    """The questions a multi-part question asks, each on its own: "Who met …, and how long did their talks
    last?" → "Who met …?", "how long did their talks last?". A part with no words of its own ("… and with
    whom?", "Where and when was …") borrows those of the first part that has some, after its wh-word. A single
    question is returned as it is."""
    pieces = [p.strip(" ?,;") for p in _PART_BREAK.split(question.strip())]
    pieces = [p for p in pieces if p]
    if len(pieces) < 2:
        return [question]
    donor = next((p for p in pieces if content_terms(p)), pieces[0])
    rest = _LEADING_WH.sub("", donor, count=1)
    return [f"{p} {rest}?" if not content_terms(p) and rest != donor else f"{p}?" for p in pieces]


def question_focus(question: str, size: int = 2) -> list[str]:
    """The first content words after the question's wh-word: what it asks about ("how many *warships*")."""
    match = _WH.search(question)
    rest = question[match.end():] if match else question
    return content_terms(rest)[:size]


def as_written(question: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for token in re.findall(r"[^\W_]+(?:['’][^\W_]+)*", question):
        word = token[:-2] if token.lower().endswith(("'s", "’s")) else token
        out.setdefault(stem(word.lower()), word)
    return out
