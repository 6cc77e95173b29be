"""The offline answerer: the retrieved sentences that best answer the question.

Each candidate sentence of the retrieved passages is scored by
  0.55 · cosine(question, sentence)                     (meaning)
+ 0.35 · IDF-weighted share of question words it holds  (the question's specifics)
+ 0.10 · 1 / rank of its passage                        (retrieval's opinion)
The best sentence must reach ``min_evidence`` or the answer is a refusal.
More sentences join while they score within ``relative_cutoff`` of the best,
are not near-duplicates of one already chosen, and the cap is not reached.
The chosen sentences are ordered by passage rank, then by position in the
document, and each carries the marker of the passage it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rag.citations import render_sentence
from rag.sentence_vectors import SentenceVectors
from rag.settings import AnswerSettings
from rag.text import content_terms, sentence_spans, word_count
from rag.types import Hit

W_SEMANTIC, W_LEXICAL, W_RANK = 0.55, 0.35, 0.10
MIN_WORDS = 5
REDUNDANT_COSINE = 0.88


@dataclass
class Candidate:
    hit_index: int
    doc_id: str
    start: int
    text: str
    terms: set[str]
    score: float = 0.0
    semantic: float = 0.0


def candidates_from(hits: list[Hit]) -> list[Candidate]:
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for i, hit in enumerate(hits):
        for s, e in sentence_spans(hit.text, offset=hit.start):
            text = hit.text[s - hit.start:e - hit.start]
            if (hit.doc_id, s) in seen or word_count(text) < MIN_WORDS:
                continue
            seen.add((hit.doc_id, s))
            out.append(Candidate(i, hit.doc_id, s, text, set(content_terms(text))))
    return out


def idf_weights(question_terms: set[str], candidates: list[Candidate]) -> dict[str, float]:
    n = len(candidates)
    return {t: math.log(1 + (n + 1) / (0.5 + sum(t in c.terms for c in candidates))) for t in question_terms}


class ExtractiveAnswerer:
    mode = "extractive"

    def __init__(self, settings: AnswerSettings, vectors: SentenceVectors) -> None:
        self.settings = settings
        self.vectors = vectors

    def score(self, question: str, hits: list[Hit], query_embedding: list[float]) -> list[Candidate]:
        """Candidates scored, best first."""
        candidates = candidates_from(hits)
        if not candidates:
            return []
        q_terms = set(content_terms(question))
        idf = idf_weights(q_terms, candidates)
        total = sum(idf.values()) or 1.0
        matrix = self.vectors.get([c.text for c in candidates])
        sims = matrix @ np.asarray(query_embedding, dtype=np.float32)
        for c, sim in zip(candidates, sims):
            lexical = sum(w for t, w in idf.items() if t in c.terms) / total
            c.semantic = float(sim)
            c.score = W_SEMANTIC * c.semantic + W_LEXICAL * lexical + W_RANK / (1 + c.hit_index)
        return sorted(candidates, key=lambda c: -c.score)

    def select(self, ranked: list[Candidate]) -> list[Candidate]:
        if not ranked or ranked[0].score < self.settings.min_evidence:
            return []
        chosen = [ranked[0]]
        floor = ranked[0].score * self.settings.relative_cutoff
        vectors = {id(c): v for c, v in zip(ranked, self.vectors.get([c.text for c in ranked]))}
        for c in ranked[1:]:
            if len(chosen) >= self.settings.max_sentences or c.score < floor:
                break
            if any(float(vectors[id(c)] @ vectors[id(k)]) >= REDUNDANT_COSINE for k in chosen):
                continue
            chosen.append(c)
        doc_order = {c.doc_id: c.hit_index for c in sorted(chosen, key=lambda c: c.hit_index)}
        return sorted(chosen, key=lambda c: (doc_order[c.doc_id], c.doc_id, c.start))

    def draft(self, question: str, hits: list[Hit], query_embedding: list[float]) -> str:
        chosen = self.select(self.score(question, hits, query_embedding))
        return " ".join(render_sentence(c.text, [c.hit_index + 1]) for c in chosen)
