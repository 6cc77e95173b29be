"""The offline answerer: the retrieved sentences that best answer the question.

Refusal comes first: when the retrieved passages hold less than
``min_coverage`` of the question's distinctive words (IDF-weighted over the
whole index), the sources are about something else and nothing is said.

Each candidate sentence of the passages is then scored by
  0.55 · cosine(question, sentence)                     (meaning)
+ 0.35 · IDF-weighted share of question words it holds  (the question's specifics)
+ 0.10 · 1 / rank of its passage                        (retrieval's opinion)
(+ a small bonus for causal wording when the question asks why; and when no
chosen sentence of a why-answer states a cause, the best causal sentence
above ``min_evidence`` takes a slot).
The best sentence must reach ``min_evidence`` or the answer is a refusal.
A question word found only in the sentence before a candidate counts half
(it resolves "he" or "the event"). Why-questions get one feedback hop: the
best sentence (the event) becomes a query of its own, to find the passages
that explain it. More sentences join while
they score within ``relative_cutoff`` of the best and are not near-duplicates
of one already chosen, up to ``max_sentences``. Finally a why-answer gets
the best explanation of its event that it does not already hold: a causal
sentence from the event's own article (articles explain their events),
fetched even when retrieval missed its passage. The chosen sentences are
ordered by passage rank, then by position, each with its passage's marker.
A sentence that restates one already chosen (its content words ≥ 80% inside
the other's) is never chosen twice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

import numpy as np

from rag.answering import Draft
from rag.citations import render_sentence
from rag.retrieval import Retrieval
from rag.sentence_vectors import SentenceVectors
from rag.settings import AnswerSettings
from rag.text import STOPWORDS, content_terms, sentence_spans, stem, words
from rag.types import Hit

W_SEMANTIC, W_LEXICAL, W_RANK, W_CAUSE = 0.55, 0.35, 0.10, 0.06
MIN_ALPHA_WORDS = 4
REDUNDANT_COSINE = 0.88
RESTATED_SHARE = 0.8
CONTEXT_CREDIT = 0.5
_WHY = re.compile(r"^\s*(why|how come|what (was|is|were|are) the reasons?)\b|\breasons?\b", re.IGNORECASE)
_CAUSAL = re.compile(r"\b(because|due to|owing to|cited|citing|reasons?|as a result|obstacles?|unless|given that|"
                     r"prerequisite|caused?|led to|in order to|so that|therefore|thus|hence|consequently|"
                     r"under (this|these|such) circumstances?)\b", re.IGNORECASE)
EXPLANATION_MIN_COSINE = 0.40


class CorpusStats(Protocol):
    def approximate_chunk_count(self) -> int: ...

    def term_document_counts(self, terms: Iterable[str], cap: int = 1000) -> dict[str, int]: ...


@dataclass
class Candidate:
    hit_index: int
    doc_id: str
    start: int
    text: str
    terms: set[str]
    context: set[str]  # words of the sentence before it (for "he", "the event")
    score: float = 0.0
    semantic: float = 0.0


_TERMINAL = re.compile(r"[.!?][\"'”’)\]]*$")


def is_sentence(text: str) -> bool:
    """A full sentence: enough words and closing punctuation (headlines and captions have none)."""
    return bool(_TERMINAL.search(text)) and len(re.findall(r"[^\W\d_]{2,}", text)) >= MIN_ALPHA_WORDS


def restates(a: Candidate, b: Candidate) -> bool:
    """The shorter sentence's content words lie (almost) all inside the other's: saying it twice."""
    small, large = (a.terms, b.terms) if len(a.terms) <= len(b.terms) else (b.terms, a.terms)
    return bool(small) and len(small & large) / len(small) >= RESTATED_SHARE


def candidates_from(hits: list[Hit]) -> list[Candidate]:
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for i, hit in enumerate(hits):
        previous: set[str] = set()
        for s, e in sentence_spans(hit.text, offset=hit.start):
            text = hit.text[s - hit.start:e - hit.start]
            terms = set(content_terms(text))
            if (hit.doc_id, s) not in seen and is_sentence(text):
                seen.add((hit.doc_id, s))
                out.append(Candidate(i, hit.doc_id, s, text, terms, previous - terms))
            previous = terms
    return out


def question_coverage(question: str, hits: list[Hit], stats: CorpusStats) -> float:
    """IDF-weighted share of the question's words that occur in the passages."""
    qwords = [w for w in dict.fromkeys(words(question)) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]
    if not qwords:
        return 0.0
    n = max(stats.approximate_chunk_count(), 1)
    counts = stats.term_document_counts(qwords)
    present = {t for hit in hits for t in content_terms(hit.text)}
    idf = {w: math.log(1 + (n + 1) / (0.5 + counts.get(w, 0))) for w in qwords}
    return sum(v for w, v in idf.items() if stem(w) in present) / sum(idf.values())


def _merge_hits(first: list[Hit], more: list[Hit], limit: int) -> list[Hit]:
    known = {h.chunk_id for h in first}
    return first + [h for h in more if h.chunk_id not in known][: max(0, limit - len(first))]


class ExtractiveAnswerer:
    mode = "extractive"

    def __init__(self, settings: AnswerSettings, vectors: SentenceVectors, stats: CorpusStats | None = None,
                 retrieve: Callable[[str, int], Retrieval] | None = None,
                 document_passages: Callable[[str], list[Hit]] | None = None) -> None:
        self.settings = settings
        self.vectors = vectors
        self.stats = stats
        self.retrieve = retrieve
        self.document_passages = document_passages

    def score(self, question: str, hits: list[Hit], query_embedding: list[float]) -> list[Candidate]:
        """Candidates scored, best first."""
        candidates = candidates_from(hits)
        if not candidates:
            return []
        q_terms = set(content_terms(question))
        df = {t: sum(t in c.terms for c in candidates) for t in q_terms}
        idf = {t: math.log(1 + (len(candidates) + 1) / (0.5 + d)) for t, d in df.items()}
        total = sum(idf.values()) or 1.0
        why = bool(_WHY.search(question))
        sims = self.vectors.get([c.text for c in candidates]) @ np.asarray(query_embedding, dtype=np.float32)
        for c, sim in zip(candidates, sims):
            lexical = sum(w if t in c.terms else CONTEXT_CREDIT * w if t in c.context else 0.0
                          for t, w in idf.items()) / total
            c.semantic = float(sim)
            c.score = W_SEMANTIC * c.semantic + W_LEXICAL * lexical + W_RANK / (1 + c.hit_index)
            if why and _CAUSAL.search(c.text):
                c.score += W_CAUSE
        return sorted(candidates, key=lambda c: -c.score)

    def explanation(self, question: str, event: Candidate, hits: list[Hit],
                    chosen: list[Candidate] = ()) -> tuple[Candidate | None, list[Hit]]:
        """Why-questions: the causal sentence not yet chosen that best explains the event (the best sentence).

        Looked for in the event's own article, retrieved passages or not
        (articles explain their events), scored by similarity to question +
        event. A passage of the article that was not retrieved yet is added to
        the passages, so the sentence can be cited and verified like any other.
        """
        known = {h.chunk_id for h in hits}
        extra = [h for h in (self.document_passages(event.doc_id) if self.document_passages else [])
                 if h.chunk_id not in known]
        taken = {(c.doc_id, c.start) for c in chosen} | {(event.doc_id, event.start)}
        pool = [c for c in candidates_from(hits + extra)
                if c.doc_id == event.doc_id and _CAUSAL.search(c.text) and (c.doc_id, c.start) not in taken
                and not any(restates(c, k) for k in [*chosen, event])]
        if not pool:
            return None, hits
        focus = f"{question} {event.text}"
        sims = self.vectors.get([c.text for c in pool]) @ self.vectors.get([focus])[0]
        best = int(np.argmax(sims))
        if sims[best] < EXPLANATION_MIN_COSINE:
            return None, hits
        cause = pool[best]
        if cause.hit_index >= len(hits):  # from the article's other passages
            hits = hits + [extra[cause.hit_index - len(hits)]]
            cause.hit_index = len(hits) - 1
        cause.score = max(cause.score, self.settings.min_evidence)
        return cause, hits

    def select(self, ranked: list[Candidate], why: bool = False) -> list[Candidate]:
        if not ranked or ranked[0].score < self.settings.min_evidence:
            return []
        vectors = dict(zip((id(c) for c in ranked), self.vectors.get([c.text for c in ranked])))

        def redundant(c: Candidate, chosen: list[Candidate]) -> bool:
            return any(float(vectors[id(c)] @ vectors[id(k)]) >= REDUNDANT_COSINE or restates(c, k) for k in chosen)

        chosen = [ranked[0]]
        floor = ranked[0].score * self.settings.relative_cutoff
        for c in ranked[1:]:
            if len(chosen) >= self.settings.max_sentences or c.score < floor:
                break
            if not redundant(c, chosen):
                chosen.append(c)
        if why and not any(_CAUSAL.search(c.text) for c in chosen):
            # An answer to "why" should state a cause: the best causal sentence takes a slot.
            cause = next((c for c in ranked if _CAUSAL.search(c.text) and c.score >= self.settings.min_evidence
                          and c not in chosen and not redundant(c, chosen)), None)
            if cause is not None:
                chosen = chosen[: self.settings.max_sentences - 1] + [cause]
        first_rank: dict[str, int] = {}
        for c in sorted(chosen, key=lambda c: c.hit_index):
            first_rank.setdefault(c.doc_id, c.hit_index)
        return sorted(chosen, key=lambda c: (first_rank[c.doc_id], c.start))

    def draft(self, question: str, retrieval: Retrieval) -> Draft:
        hits = retrieval.hits
        if not hits:
            return Draft("", hits)
        if self.stats is not None and question_coverage(question, hits, self.stats) < self.settings.min_coverage:
            return Draft("", hits)
        why = bool(_WHY.search(question))
        ranked = self.score(question, hits, retrieval.query_embedding)
        if ranked and self.retrieve is not None and why \
                and ranked[0].score >= self.settings.min_evidence:
            hop = self.retrieve(ranked[0].text, len(hits))
            hits = _merge_hits(hits, hop.hits, len(hits) + len(hits) // 2)
            ranked = self.score(question, hits, retrieval.query_embedding)
        chosen = self.select(ranked, why)
        if why and chosen:
            event = ranked[0]
            cause, hits = self.explanation(question, event, hits, chosen)
            if cause is not None:
                chosen = self._with(chosen, cause, keep=event)
        return Draft(" ".join(render_sentence(c.text, [c.hit_index + 1]) for c in chosen), hits)

    def _with(self, chosen: list[Candidate], cause: Candidate, keep: Candidate) -> list[Candidate]:
        """``chosen`` with ``cause`` in it: when full, it replaces the weakest sentence other than ``keep``."""
        if len(chosen) >= self.settings.max_sentences:
            weakest = min((c for c in chosen if c is not keep), key=lambda c: c.score)
            chosen = [c for c in chosen if c is not weakest]
        chosen = chosen + [cause]
        first_rank: dict[str, int] = {}
        for c in sorted(chosen, key=lambda c: c.hit_index):
            first_rank.setdefault(c.doc_id, c.hit_index)
        return sorted(chosen, key=lambda c: (first_rank[c.doc_id], c.start))
