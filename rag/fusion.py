"""Weighted reciprocal rank fusion, and promotion of decisive keyword matches."""

from __future__ import annotations

#: The keyword rank whose score a top hit is compared with to call it decisive.
DECISIVE_REFERENCE_RANK = 5


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


def decisive_keyword_hits(keyword: list[tuple[str, float]], ratio: float,
                          reference_rank: int = DECISIVE_REFERENCE_RANK) -> list[str]:
    """Ids of the keyword hits that stand out: score ≥ ``ratio`` × the score at ``reference_rank``.

    ``keyword`` is ``(id, score)`` best first, higher better (BM25). With fewer
    hits than ``reference_rank`` the last hit is the reference. Nothing is
    decisive when ``ratio`` ≤ 1, with fewer than two hits, or when the
    reference score is not positive.
    """
    if ratio <= 1 or len(keyword) < 2:
        return []
    reference = keyword[min(reference_rank, len(keyword)) - 1][1]
    if reference <= 0:
        return []
    return [item for item, score in keyword if score >= ratio * reference]


def promote_decisive(fused: list[tuple[str, float]], keyword: list[tuple[str, float]], ratio: float,
                     reference_rank: int = DECISIVE_REFERENCE_RANK) -> list[tuple[str, float]]:
    """Move decisive keyword matches (:func:`decisive_keyword_hits`) ahead of every other fused item.

    Rank fusion only sees ranks, so a BM25 hit that outscores the rest several
    times over (an exact match on a rare term: an id, a code, a name) can sink
    below items both retrievers find mediocre. Decisive hits keep their fused
    order among themselves (the dense side breaks ties between several); their
    scores are lifted to the best remaining score so the list stays best first.
    """
    decisive = set(decisive_keyword_hits(keyword, ratio, reference_rank))
    if not decisive:
        return fused
    head = [(item, score) for item, score in fused if item in decisive]
    rest = [(item, score) for item, score in fused if item not in decisive]
    floor = rest[0][1] if rest else 0.0
    return [(item, max(score, floor)) for item, score in head] + rest
