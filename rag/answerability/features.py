"""Candidates and their features: every sentence of the retrieved passages, and the measurements (see
:data:`FEATURES`) that say whether it answers the question."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from rag.answerability.question import (YEAR, CorpusStats, QuestionTerms, degree_words, expected_type, negated,
                                        question_asks_cause, spelt_alike, states_cause, type_present,
                                        value_swapped)
from rag.retrieval import Retrieval
from rag.sentence_vectors import SentenceVectors
from rag.text import STOPWORDS, content_terms, is_sentence, sentence_spans, stem, words
from rag.types import Hit


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
    predates_question: bool = False  # its document was written before the year the question asks about


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
    "unknown_names",  # share of the things the question names that no document mentions (question level)
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
        if any(abs(i - a) <= window for a in anchors) and type_present(kind, t if i == 0 else f"x {t}", q.words):
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


def years_named(hit: Hit) -> set[str]:
    """The years a passage's text and title name."""
    return set(YEAR.findall(hit.text)) | set(YEAR.findall(hit.title))


def predates(asked_years: set[str], hit: Hit) -> bool:
    """The document is dated before every year the question asks about and the passage names none of them:
    an article cannot report what happened after it was written ("Which country hosted the 2024 forum?" of a
    2023 article that says where the forum "will be held")."""
    if not asked_years or not hit.date or not hit.date[:4].isdigit():
        return False
    return not (asked_years & years_named(hit)) and min(int(y) for y in asked_years) > int(hit.date[:4])


def never_mentioned(q: QuestionTerms, hits: Sequence[Hit]) -> set[str]:
    """The things the question names (a word, not an acronym or a number) that no document mentions and no
    retrieved passage spells one letter otherwise ("Sigimund" of "Sigismund" is a typo, not a new thing); their
    stems. Years are left out: an article rarely states its own."""
    unknown = {term: word for term, word in q.named.items() if term in q.unknown}
    if not unknown:
        return set()
    seen = {w for h in hits for w in words(h.text)}
    return {term for term, word in unknown.items()
            if not any(abs(len(w) - len(word)) <= 1 and spelt_alike(w, word) for w in seen)}


def _window(c: Candidate) -> str:
    return f"{c.previous} {c.text}" if c.previous else c.text


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
    unknown_names = len(never_mentioned(q, hits)) / len(q.named) if q.named else 0.0
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
        passage_years = years_named(hit)
        c.predates_question = predates(q.years, hit)
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
            "unknown_names": unknown_names,
            "max_missing_idf": max_missing,
            "sentence_missing_idf": max((w for t, w in q.stems.items() if t not in around), default=0.0) / q.log_n,
            "specific_missing": specific_missing,
            "specific_missing_sentence": max((w for t, w in q.stems.items() if t not in around and t not in q.category),
                                             default=0.0) / q.log_n,
            "type_expected": float(kind is not None),
            "type_present": float(kind is not None and type_present(kind, c.text, q.words)),
            "type_near": float(kind is not None and _type_near(kind, c.text, q)),
            "focus_missing": (sum(f not in around for f in q.focus) / len(q.focus)) if q.focus else 0.0,
            "soft_coverage": soft_cov,
            "bigram_overlap": _bigram_share(q.bigrams, c.text),
            "question_terms": math.log(1 + len(q.stems)),
            "novel_share": (len(c.terms - set(q.stems)) / len(c.terms)) if c.terms else 0.0,
            "year_missing": float(bool(q.years) and not (q.years & passage_years)),
            "cause_asked": float(cause_asked),
            "cause_asked_and_stated": float(cause_asked and states_cause(c.text)),
            "negation_unmatched": float(question_negated and not negated(c.text)),
            "negation_added": float(negated(c.text) and not question_negated),
            "degree_unmatched": float(bool(question_degree - degree_words(c.text))),
            "value_swapped": float(value_swapped(q.tokens, c.text)),
            "passage_rank": 1.0 / (1 + c.hit_index),
            "both_rankers": float(in_top),
            "log_words": math.log(1 + len(c.text.split())),
        }
    return q
