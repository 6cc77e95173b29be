"""Does this evidence answer this question? A learned, calibrated judgement.

Every sentence of the retrieved passages is a *candidate*. For each one a
handful of features say whether it answers the question (see
:data:`FEATURES`): how much of the question's distinctive vocabulary it holds
(IDF over the whole index), whether the question's names and numbers are in
it, whether the kind of answer the question asks for (a number, a date, a
name) is in it beyond the question's own words, its dense similarity to the
question, how the retrievers ranked its passage, and question-level signals
(the question's rare words that no retrieved passage contains, or that the
index does not know at all).

A logistic model fitted by ``python -m eval.calibrate`` on labelled data
(the gold sets, questions asked of a corpus without their article, and
questions with one distinctive word swapped; see README) turns the features into ``p``: the probability that the sentence
answers the question. The answer's ``confidence`` is the best sentence's
``p`` passed through a second, answer-level calibration fitted on the same
data (Platt scaling). Coefficients live in ``rag/assets/answerability.json``
with the data they were fitted on; nothing here is tuned by hand.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import numpy as np

from rag.retrieval import Retrieval
from rag.sentence_vectors import SentenceVectors
from rag.text import STOPWORDS, content_terms, is_sentence, sentence_spans, stem, words
from rag.types import Hit

MODEL_PATH = Path(__file__).parent / "assets" / "answerability.json"


class CorpusStats(Protocol):
    """What the judgement needs to know of the whole index (the docstore provides it)."""

    def approximate_chunk_count(self) -> int: ...

    def term_document_counts(self, terms: Iterable[str], cap: int = 1000) -> dict[str, int]: ...


# ---- candidates --------------------------------------------------------------


@dataclass
class Candidate:
    """One sentence of a retrieved passage."""

    hit_index: int  # which passage (0-based, retrieval order)
    doc_id: str
    start: int  # offsets into the document's stored text
    end: int
    text: str
    terms: set[str]  # stemmed content words
    context: set[str]  # words of the sentence before it and the title ("he", "the event", the article's subject)
    previous: str = ""  # the sentence before it in the passage
    features: dict[str, float] = field(default_factory=dict)
    p: float = 0.0  # probability that it answers the question


def candidates_from(hits: Sequence[Hit]) -> list[Candidate]:
    """The full sentences of the passages, each once (overlapping chunks repeat sentences)."""
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for i, hit in enumerate(hits):
        title = set(content_terms(hit.title))
        previous: set[str] = set()
        previous_text = ""
        for s, e in sentence_spans(hit.text, offset=hit.start):
            text = hit.text[s - hit.start:e - hit.start]
            terms = set(content_terms(text))
            if (hit.doc_id, s) not in seen and is_sentence(text):
                seen.add((hit.doc_id, s))
                out.append(Candidate(i, hit.doc_id, s, e, text, terms, (previous | title) - terms, previous_text))
            previous, previous_text = terms, text
    return out


# ---- what the question asks for ----------------------------------------------

_NUMBER_WORDS = frozenset("""zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred
hundreds thousand thousands million millions billion billions trillion dozen dozens half quarter percent
once twice""".split())
_MONTHS = frozenset("""january february march april may june july august september october november december
spring summer autumn fall winter century centuries decade decades""".split())
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
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


def _type_present(kind: str, text: str, question_words: set[str]) -> bool:
    """Does ``text`` hold an answer of ``kind`` that is not just the question's own words?"""
    tokens = re.findall(r"[^\W_]+", text)
    novel = [t for t in tokens if t.lower() not in question_words]
    if kind == "number":
        return any(_DIGIT.search(t) or t.lower() in _NUMBER_WORDS for t in novel)
    if kind == "count":  # how many, how much: a year is not a count
        return any((_DIGIT.search(t) and not _YEAR.fullmatch(t)) or t.lower() in _NUMBER_WORDS for t in novel)
    if kind == "date":
        return any(_YEAR.fullmatch(t) or t.lower() in _MONTHS or (_DIGIT.search(t) and len(t) <= 4) for t in novel)
    # a name: a capitalised word (one that opens the sentence only when it is not a common opener)
    return any(t[0].isupper() and (i > 0 or t.lower() not in _OPENERS)
               for i, t in enumerate(tokens) if t.lower() not in question_words)


def question_names(question: str) -> list[str]:
    """Names and numbers the question mentions (capitalised words past the first, tokens with digits), stemmed."""
    tokens = re.findall(r"[^\W_]+(?:['’][^\W_]+)*", question)
    out = []
    for i, token in enumerate(tokens):
        word = re.sub(r"['’]s$", "", token).lower()
        if word in STOPWORDS:
            continue
        if _DIGIT.search(token) or (i > 0 and token[0].isupper()):
            out.append(stem(word))
    return list(dict.fromkeys(out))


_CAUSE_QUESTION = re.compile(r"^\s*(why|how come)\b|\b(reasons?|causes?|caused|purpose)\b", re.I)
# Plain English connectives that state a cause or purpose (not a list tuned on one corpus: the model learns
# their weight from every gold set, the Wikipedia one included).
_CAUSAL = re.compile(r"\b(because|due to|owing to|as a result|caused?|causing|led to|leads? to|in order to|so that|"
                     r"therefore|thus|hence|consequently|since|reasons?|cited|citing|given that|resulted)\b", re.I)


def question_asks_cause(question: str) -> bool:
    return bool(_CAUSE_QUESTION.search(question))


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
    if _YEAR.fullmatch(token):
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
    bare = unicodedata.normalize("NFKD", re.sub(r"['’]s$", "", token.lower()))
    return "".join(ch for ch in bare if not unicodedata.combining(ch))


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


# ---- features ----------------------------------------------------------------

#: The model's inputs, in order. Question-level features repeat on every candidate of the question.
FEATURES = (
    "cosine",  # dense similarity of question and sentence
    "cosine_gap",  # best cosine among the candidates minus this one
    "cosine_window",  # dense similarity of the question and the sentence read with the one before it
    "coverage",  # IDF-weighted share of the question's words in the sentence
    "coverage_context",  # the same, with the previous sentence and the title counting half
    "coverage_gap",  # best coverage among the candidates minus this one
    "passage_coverage",  # the same share in the sentence's whole passage
    "names_missing",  # share of the question's names/numbers absent from sentence and context
    "names_missing_everywhere",  # share absent from every retrieved passage (question level)
    "rare_missing",  # IDF share of the question's words absent from every passage (question level)
    "unknown_to_index",  # IDF share of the question's words the index does not hold at all (question level)
    "unknown_names",  # share of the question's names and numbers the index does not hold (question level)
    "max_missing_idf",  # the rarest question word no passage holds, IDF / log(N) (question level)
    "sentence_missing_idf",  # the rarest question word the sentence (with its context) lacks, IDF / log(N)
    "specific_missing",  # IDF share of the question's words no passage holds, leaving out category words
    "specific_missing_sentence",  # the rarest non-category question word the sentence lacks, IDF / log(N)
    "type_expected",  # the question asks for a number, date or name
    "type_present",  # ... and the sentence holds one beyond the question's words
    "type_near",  # ... within a few words of a word the question and the sentence share
    "focus_missing",  # share of the words the question asks about (right after its wh-word) the sentence lacks
    "soft_coverage",  # coverage where a question word the sentence lacks counts by its closest word's similarity
    "bigram_overlap",  # share of the question's adjacent content-word pairs the sentence also has side by side
    "question_terms",  # log of how many distinct content words the question has (question level)
    "novel_share",  # share of the sentence's words not in the question (an answer says something new)
    "year_missing",  # the question names a year the sentence, its passage and its title do not
    "cause_asked",  # the question asks why (question level: its answer states a cause, not the question's words)
    "cause_asked_and_stated",  # a why-question and a sentence with a causal connective
    "negation_unmatched",  # the question is negated ("not", "never", "n't") and the sentence is not
    "negation_added",  # the sentence is negated and the question is not
    "degree_unmatched",  # the question picks one out ("most", "least", "only", "first") and the sentence lacks that word
    "value_swapped",  # a name, number, year, month or ordinal of the question has another of its kind in its place
    "passage_rank",  # 1 / (1 + rank of the passage)
    "both_rankers",  # the passage is in the top 10 of the dense and of the keyword ranking
    "log_words",  # length of the sentence
)


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
                   years=set(_YEAR.findall(question)), log_n=math.log(2 + n), focus=question_focus(question),
                   category=question_category(question),
                   wh_modifiers={stem(w.lower()) for w in re.findall(r"\bhow\s+(\w+)", question, re.I)},
                   bigrams=set(zip(terms, terms[1:])), as_written=_as_written(question),
                   tokens=_TOKEN.findall(question))


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


def _bigram_share(bigrams: set[tuple[str, str]], text: str) -> float:
    if not bigrams:
        return 0.0
    terms = content_terms(text)
    return len(bigrams & set(zip(terms, terms[1:]))) / len(bigrams)


def _type_near(kind: str, text: str, q: "QuestionTerms", window: int = 6) -> bool:
    """An answer of ``kind`` within ``window`` words of a question word the sentence holds."""
    tokens = re.findall(r"[^\W_]+", text)
    anchors = [i for i, t in enumerate(tokens) if stem(t.lower()) in q.stems]
    for i, t in enumerate(tokens):
        if any(abs(i - a) <= window for a in anchors) and _type_present(kind, t if i == 0 else f"x {t}", q.words):
            return True
    return False


def _soft_coverages(q: QuestionTerms, candidates: list[Candidate], vectors: SentenceVectors) -> list[float]:
    """IDF-weighted coverage in which a question word missing from a sentence earns the (clipped) MiniLM
    similarity of its closest word in the sentence ("decline" ~ "rejected"), so paraphrases are not zero."""
    total = sum(q.stems.values())
    if not candidates or not total:
        return [0.0] * len(candidates)
    spelled = {stem(w): w for w in q.words}
    sentence_words = [sorted({w for w in words(c.text) if w not in STOPWORDS and len(w) > 2}) for c in candidates]
    missing = sorted({t for c in candidates for t in q.stems if t not in c.terms and t in spelled})
    vocabulary = sorted({w for ws in sentence_words for w in ws})
    if not missing or not vocabulary:
        return [sum(w for t, w in q.stems.items() if t in c.terms) / total for c in candidates]
    matrix = vectors.get([spelled[t] for t in missing] + vocabulary)
    sims = matrix[:len(missing)] @ matrix[len(missing):].T
    row = {t: i for i, t in enumerate(missing)}
    column = {w: i for i, w in enumerate(vocabulary)}
    credit = np.clip((sims - 0.3) / 0.7, 0.0, None)  # similarity below 0.3 earns nothing
    out = []
    for c, ws in zip(candidates, sentence_words):
        closest = credit[:, [column[w] for w in ws]].max(axis=1) if ws else np.zeros(len(missing))
        score = sum(weight if t in c.terms else weight * float(closest[row[t]]) if t in row else 0.0
                    for t, weight in q.stems.items())
        out.append(score / total)
    return out


def _window(c: Candidate) -> str:
    return f"{c.previous} {c.text}" if c.previous else c.text


def _as_written(question: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for token in re.findall(r"[^\W_]+(?:['’][^\W_]+)*", question):
        word = token[:-2] if token.lower().endswith(("'s", "’s")) else token
        out.setdefault(stem(word.lower()), word)
    return out


def _share(weights: dict[str, float], present: set[str], half: set[str] = frozenset()) -> float:
    total = sum(weights.values())
    if not total:
        return 0.0
    return sum(w if t in present else 0.5 * w if t in half else 0.0 for t, w in weights.items()) / total


def featurize(question: str, retrieval: Retrieval, candidates: list[Candidate], vectors: SentenceVectors,
              stats: CorpusStats | None) -> QuestionTerms:
    """Fill every candidate's ``features``; returns the question's terms (for explaining a refusal)."""
    q = QuestionTerms.of(question, stats)
    hits = retrieval.hits
    passage_terms = [set(content_terms(h.text)) | set(content_terms(h.title)) for h in hits]
    everywhere = set().union(*passage_terms) if passage_terms else set()
    missing = {t for t in q.stems if t not in everywhere}
    total_idf = sum(q.stems.values()) or 1.0
    rare_missing = sum(q.stems[t] for t in missing) / total_idf
    unknown = sum(q.stems[t] for t in q.unknown) / total_idf
    max_missing = max((q.stems[t] for t in missing), default=0.0) / q.log_n
    specific_missing = sum(q.stems[t] for t in missing - q.category) / total_idf
    names_everywhere = (sum(n not in everywhere for n in q.names) / len(q.names)) if q.names else 0.0
    kind = expected_type(question)
    cause_asked = question_asks_cause(question)
    question_negated = negated(question)
    question_degree = degree_words(question)
    if candidates:
        query = np.asarray(retrieval.query_embedding, dtype=np.float32)
        matrix = vectors.get([c.text for c in candidates] + [_window(c) for c in candidates]) @ query
        sims, window_sims = matrix[:len(candidates)], matrix[len(candidates):]
    else:
        sims = window_sims = np.zeros(0)
    coverages = [_share(q.stems, c.terms) for c in candidates]
    soft = _soft_coverages(q, candidates, vectors)
    best_sim = float(sims.max()) if len(sims) else 0.0
    best_cov = max(coverages, default=0.0)
    for c, sim, window_sim, cov, soft_cov in zip(candidates, sims, window_sims, coverages, soft):
        hit = hits[c.hit_index]
        around = c.terms | c.context
        in_top = (hit.dense_rank or 99) <= 10 and (hit.keyword_rank or 99) <= 10
        passage_years = set(_YEAR.findall(hit.text)) | set(_YEAR.findall(hit.title))
        c.features = {
            "cosine": float(sim),
            "cosine_gap": best_sim - float(sim),
            "cosine_window": float(window_sim),
            "coverage": cov,
            "coverage_context": _share(q.stems, c.terms, c.context),
            "coverage_gap": best_cov - cov,
            "passage_coverage": _share(q.stems, passage_terms[c.hit_index]),
            "names_missing": (sum(n not in around for n in q.names) / len(q.names)) if q.names else 0.0,
            "names_missing_everywhere": names_everywhere,
            "rare_missing": rare_missing,
            "unknown_to_index": unknown,
            "unknown_names": (sum(n in q.unknown for n in q.names) / len(q.names)) if q.names else 0.0,
            "max_missing_idf": max_missing,
            "sentence_missing_idf": max((w for t, w in q.stems.items() if t not in around), default=0.0) / q.log_n,
            "specific_missing": specific_missing,
            "specific_missing_sentence": max((w for t, w in q.stems.items() if t not in around and t not in q.category),
                                             default=0.0) / q.log_n,
            "type_expected": float(kind is not None),
            "type_present": float(kind is not None and _type_present(kind, c.text, q.words)),
            "type_near": float(kind is not None and _type_near(kind, c.text, q)),
            "focus_missing": (sum(f not in around for f in q.focus) / len(q.focus)) if q.focus else 0.0,
            "soft_coverage": soft_cov,
            "bigram_overlap": _bigram_share(q.bigrams, c.text),
            "question_terms": math.log(1 + len(q.stems)),
            "novel_share": (len(c.terms - set(q.stems)) / len(c.terms)) if c.terms else 0.0,
            "year_missing": float(bool(q.years) and not (q.years & passage_years)),
            "cause_asked": float(cause_asked),
            "cause_asked_and_stated": float(cause_asked and bool(_CAUSAL.search(c.text))),
            "negation_unmatched": float(question_negated and not negated(c.text)),
            "negation_added": float(negated(c.text) and not question_negated),
            "degree_unmatched": float(bool(question_degree - degree_words(c.text))),
            "value_swapped": float(value_swapped(q.tokens, c.text)),
            "passage_rank": 1.0 / (1 + c.hit_index),
            "both_rankers": float(in_top),
            "log_words": math.log(1 + len(c.text.split())),
        }
    return q


# ---- the fitted model ----------------------------------------------------------


@dataclass(frozen=True)
class AnswerabilityModel:
    """Standardised logistic regression over :data:`FEATURES`, plus answer-level Platt scaling."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    answer_slope: float
    answer_intercept: float
    recommended_threshold: float
    meta: dict

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> "AnswerabilityModel":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "AnswerabilityModel":
        sentence, answer = data["sentence_model"], data["answer_calibration"]
        features = tuple(sentence["features"])
        unknown = set(features) - set(FEATURES)
        if unknown:
            raise ValueError(f"the answerability model uses features this code does not compute: {sorted(unknown)}")
        return cls(features, np.asarray(sentence["mean"], dtype=np.float64),
                   np.asarray(sentence["scale"], dtype=np.float64), np.asarray(sentence["coef"], dtype=np.float64),
                   float(sentence["intercept"]), float(answer["slope"]), float(answer["intercept"]),
                   float(data["recommended_threshold"]), {k: v for k, v in data.items() if k not in ("sentence_model", "answer_calibration")})

    def matrix(self, candidates: Sequence[Candidate]) -> np.ndarray:
        return np.array([[c.features[f] for f in self.features] for c in candidates], dtype=np.float64)

    def sentence_logits(self, candidates: Sequence[Candidate]) -> np.ndarray:
        if not candidates:
            return np.zeros(0)
        return ((self.matrix(candidates) - self.mean) / self.scale) @ self.coef + self.intercept

    def answer_confidence(self, best_logit: float) -> float:
        return _sigmoid(self.answer_slope * best_logit + self.answer_intercept)


def _sigmoid(x: float | np.ndarray):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


@lru_cache(maxsize=4)
def default_model(path: str = str(MODEL_PATH)) -> AnswerabilityModel:
    return AnswerabilityModel.load(Path(path))


# ---- the judgement -----------------------------------------------------------


@dataclass
class Assessment:
    """What the evidence says about a question: every candidate sentence with its ``p``, best first."""

    confidence: float  # calibrated P(the sources answer the question)
    candidates: list[Candidate]
    question_terms: QuestionTerms
    hits: Sequence[Hit]
    parts: list["Assessment"] = field(default_factory=list)  # one per part of a multi-part question, else none
    threshold: float = 0.5  # the confidence below which the sources are taken not to answer

    def answers(self, threshold: float | None = None) -> bool:
        return self.confidence >= (self.threshold if threshold is None else threshold)

    @property
    def reason(self) -> str:
        """Why the sources do not answer, in words from the evidence (worked out only when asked for)."""
        return explain_refusal(self.question_terms, self.hits, self.candidates[0] if self.candidates else None)


class Assessor:
    def __init__(self, vectors: SentenceVectors, stats: CorpusStats | None,
                 model: AnswerabilityModel | None = None) -> None:
        self.vectors = vectors
        self.stats = stats
        self.model = model or default_model()

    def assess(self, question: str, retrieval: Retrieval, threshold: float | None = None) -> Assessment:
        """The judgement of the whole question, and of each of its parts when it asks more than one thing
        (the whole question's confidence decides whether to answer; each part that passes ``threshold``, by
        default the model's recommendation, brings its best sentence)."""
        threshold = self.model.recommended_threshold if threshold is None else threshold
        assessment = self._assess(question, retrieval, threshold)
        parts = question_parts(question)
        if len(parts) > 1 and assessment.candidates:
            embeddings = self.vectors.get(parts)
            assessment.parts = [self._assess(part, Retrieval(retrieval.hits, vector.tolist()), threshold)
                                for part, vector in zip(parts, embeddings)]
        return assessment

    def _assess(self, question: str, retrieval: Retrieval, threshold: float) -> Assessment:
        candidates = candidates_from(retrieval.hits)
        q = featurize(question, retrieval, candidates, self.vectors, self.stats)
        if not candidates:
            return Assessment(0.0, [], q, retrieval.hits, threshold=threshold)
        logits = self.model.sentence_logits(candidates)
        for c, z in zip(candidates, logits):
            c.p = float(_sigmoid(z))
        order = np.argsort(-logits, kind="stable")
        ranked = [candidates[i] for i in order]
        confidence = round(float(self.model.answer_confidence(float(logits[order[0]]))), 4)
        return Assessment(confidence, ranked, q, retrieval.hits, threshold=threshold)


def explain_refusal(q: QuestionTerms, hits: Sequence[Hit], best: Candidate | None) -> str:
    """A refusal that says what the documents do mention and what they do not, from the evidence itself.

    "The documents mention navy and Taiwan but say nothing about warships."
    Words are shown as the question spells them.
    """
    spelled = q.as_written
    present_anywhere = set().union(*(set(content_terms(h.text)) for h in hits)) if hits else set()
    by_idf = sorted((t for t in q.stems if t not in q.wh_modifiers), key=lambda t: -q.stems[t])
    # the kind of answer asked for ("which *outlet*") says least about what is missing: named last
    absent = [spelled.get(t, t) for t in sorted(by_idf, key=lambda t: t in q.category)
              if t not in present_anywhere][:3]
    near = best.terms if best is not None else present_anywhere
    mentioned = [spelled.get(t, t) for t in by_idf if t in near][:3]
    if not hits:
        return "No passage in the documents relates to this question."
    swap = value_swap(q.tokens, best.text) if best is not None else None
    if swap is not None:  # the closest passage names another thing of the same kind where the question has its own
        return f"The closest passage speaks of “{swap[1]}”, not “{swap[0]}”."
    if absent and mentioned:
        return f"The documents mention {_join(mentioned)} but say nothing about {_join(absent)}."
    if absent:
        return f"The documents say nothing about {_join(absent)}."
    if mentioned:
        return f"The documents mention {_join(mentioned)}, but no passage states what was asked."
    return "No passage in the documents states what was asked."


def _join(items: list[str]) -> str:
    quoted = [f"“{i}”" for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
