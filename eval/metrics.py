"""Metric functions: pure, per item, aggregated by :func:`aggregate`.

A *span* is ``(doc_id, start, end)`` in stored-text offsets. A retrieved chunk
or a citation "finds" a gold source when it is in the same document and the
two spans overlap.
"""

from __future__ import annotations

import math
from statistics import mean
from typing import Iterable, Sequence

Span = tuple[str, int, int]
KS = (1, 3, 5, 10)


def overlaps(a: Span, b: Span) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def retrieval_scores(retrieved: Sequence[Span], gold: Sequence[Span], ks: Iterable[int] = KS) -> dict[str, float]:
    """hit@k, recall@k, reciprocal rank and nDCG@10 of a ranked list against gold spans.

    A gold source counts once, at the first rank that finds it; recall@k is the
    share of gold sources found in the top k.
    """
    if not gold:
        raise ValueError("retrieval scores need at least one gold span")
    first_rank: dict[int, int] = {}  # gold source → the rank that found it
    for rank, span in enumerate(retrieved, 1):
        for g, gold_span in enumerate(gold):
            if g not in first_rank and overlaps(span, gold_span):
                first_rank[g] = rank
    # For nDCG a rank earns one gain at most, even when its chunk spans two gold quotes.
    gain_ranks = sorted(set(first_rank.values()))
    out: dict[str, float] = {}
    for k in ks:
        found = sum(1 for r in first_rank.values() if r <= k)
        out[f"hit@{k}"] = 1.0 if found else 0.0
        out[f"recall@{k}"] = found / len(gold)
    out["mrr"] = 1.0 / min(first_rank.values()) if first_rank else 0.0
    dcg = sum(1.0 / math.log2(r + 1) for r in gain_ranks if r <= 10)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(gold), 10) + 1))
    out["ndcg@10"] = dcg / ideal
    return out


def covers(text: str, group: Sequence[str]) -> bool:
    low = text.lower()
    return any(alt.lower() in low for alt in group)


def answer_scores(answer_text: str, answerable_gold: bool, answered: bool,
                  must_include: Sequence[Sequence[str]]) -> dict[str, float | None]:
    """must-include coverage for answerable questions; refusal correctness for all."""
    if answerable_gold:
        coverage = (sum(covers(answer_text, g) for g in must_include) / len(must_include)) if must_include else None
        return {"must_include": coverage,
                "fully_covered": None if coverage is None else float(coverage == 1.0),
                "false_refusal": float(not answered), "refusal_correct": None}
    return {"must_include": None, "fully_covered": None, "false_refusal": None,
            "refusal_correct": float(not answered)}


def citation_scores(citations: Sequence[Span], citation_supported: Sequence[bool],
                    sentence_supported: Sequence[bool], gold: Sequence[Span]) -> dict[str, float | None]:
    """ALCE-style citation precision (strict: overlaps a gold quote; lenient: or supports its sentence),
    citation recall (sentences with a supporting citation) and the share of gold sources cited."""
    out: dict[str, float | None] = {"precision_strict": None, "precision_lenient": None, "recall": None,
                                    "gold_cited": None}
    if citations:
        strict = [float(any(overlaps(c, g) for g in gold)) for c in citations]
        out["precision_strict"] = mean(strict)
        out["precision_lenient"] = mean(float(s or sup) for s, sup in zip(strict, citation_supported))
    if sentence_supported:
        out["recall"] = mean(float(s) for s in sentence_supported)
    if gold:
        out["gold_cited"] = mean(float(any(overlaps(c, g) for c in citations)) for g in gold)
    return out


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(round(p * len(ordered) / 100, 9)))  # round: 55% of 100 is rank 55, not 56
    return ordered[min(rank, len(ordered)) - 1]


def aggregate(rows: Sequence[dict[str, float | None]]) -> dict[str, float | None]:
    """Mean of every key over the rows where it is not None (None when no row has it); plus ``n``."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    out: dict[str, float | None] = {}
    for key in keys:
        values = [row[key] for row in rows if row.get(key) is not None]
        out[key] = round(mean(values), 4) if values else None
    out["n"] = len(rows)
    return out
