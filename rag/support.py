"""Does a passage support a sentence? And which of its sentences do?

A passage supports a claim when one of its sentences, or two adjacent ones,
contains at least ``lexical_threshold`` of the claim's content words
(stemmed), or, failing that, is at least ``semantic_threshold`` cosine-similar
to it. The winning window is the citation's quote, so a quote is the
supporting sentence(s), never a whole chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.sentence_vectors import SentenceVectors
from rag.settings import VerifySettings
from rag.text import content_terms, is_sentence, sentence_spans
from rag.types import Hit


@dataclass(frozen=True)
class Support:
    score: float
    start: int  # offsets into the document's stored text
    end: int
    how: str  # "lexical" or "semantic"


def lexical_support(claim_terms: list[str], window_terms: set[str]) -> float:
    """Share of the claim's distinct content words found in the window."""
    distinct = set(claim_terms)
    if not distinct:
        return 0.0
    return len(distinct & window_terms) / len(distinct)


def passage_windows(hit: Hit) -> list[tuple[int, int]]:
    """Sentence windows of a passage, absolute offsets: single sentences, then adjacent pairs.

    Headlines, date lines and captions (no full sentence) are never part of a window, so a quote
    never starts or ends with one.
    """
    spans = sentence_spans(hit.text, offset=hit.start)
    full = [is_sentence(hit.text[s - hit.start:e - hit.start]) for s, e in spans]
    singles = [span for span, ok in zip(spans, full) if ok]
    pairs = [(a[0], b[1]) for (a, ok_a), (b, ok_b) in zip(zip(spans, full), zip(spans[1:], full[1:])) if ok_a and ok_b]
    return singles + pairs


class SupportChecker:
    def __init__(self, settings: VerifySettings, vectors: SentenceVectors | None = None) -> None:
        self.settings = settings
        self.vectors = vectors

    def check(self, claim: str, hit: Hit) -> Support | None:
        """The best supporting window of ``hit`` for ``claim``, or None."""
        windows = passage_windows(hit)
        if not windows:
            return None
        texts = [hit.text[s - hit.start:e - hit.start] for s, e in windows]
        claim_terms = content_terms(claim)
        # Lexical: best score; among equals, the shortest window.
        scored = [(lexical_support(claim_terms, set(content_terms(t))), -(e - s), (s, e))
                  for t, (s, e) in zip(texts, windows)]
        best = max(scored)
        if best[0] >= self.settings.lexical_threshold:
            return Support(round(best[0], 4), best[2][0], best[2][1], "lexical")
        if self.vectors is None:
            return None
        matrix = self.vectors.get([claim] + texts)
        sims = matrix[1:] @ matrix[0]
        i = int(np.argmax(sims))
        if sims[i] >= self.settings.semantic_threshold:
            return Support(round(float(sims[i]), 4), windows[i][0], windows[i][1], "semantic")
        return None
