"""Weighted reciprocal rank fusion."""

from __future__ import annotations


def reciprocal_rank_fusion(rankings: list[list[str]], weights: list[float] | None = None,
                           k: int = 60) -> list[tuple[str, float]]:
    """Fuse best-first id lists: ``score(id) = Σ w_i / (k + rank_i)`` (rank from 1).

    Returns ``(id, score)`` best first; ties keep the order of first appearance.
    """
    weights = [1.0] * len(rankings) if weights is None else weights
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(dict.fromkeys(ranking), start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])
