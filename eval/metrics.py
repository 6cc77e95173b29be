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
    """ALCE-style citation precision (strict: overlaps a gold quote, counting an unanswerable question's
    citations as wrong; ``precision_strict_answerable``: the same over answerable questions only; lenient: or
    supports its sentence),
    citation recall (sentences with a supporting citation) and the share of gold sources cited."""
    out: dict[str, float | None] = {"precision_strict": None, "precision_strict_answerable": None,
                                    "precision_lenient": None, "recall": None, "gold_cited": None}
    if citations:
        strict = [float(any(overlaps(c, g) for g in gold)) for c in citations]
        out["precision_strict"] = mean(strict)
        # the same over questions that have gold sources: what the answers cite, apart from answering at all
        out["precision_strict_answerable"] = mean(strict) if gold else None
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


# ---- decisions: answer or refuse ------------------------------------------------


def decision_correct(answerable_gold: bool, answered: bool) -> bool:
    """The answer-or-refuse decision: answering is right for an answerable question, refusing for an
    unanswerable one."""
    return answered == answerable_gold


def decision_row(rows: Sequence[dict]) -> dict[str, object]:
    """One row of the decision table over ``rows`` (each with bools ``answerable`` and ``answered``).

    ``n``; ``answerable_n`` (how many are answerable); ``answerable`` (True, False, or ``"mixed"``; None
    for no rows); ``answered`` (share answered); ``correct`` (share of right decisions: for unanswerable
    questions the refusal rate, for answerable ones 1 − the false-refusal rate; None for no rows).
    """
    n = len(rows)
    answerable_n = sum(1 for r in rows if r["answerable"])
    kind: bool | str | None = (None if n == 0 else True if answerable_n == n else False if answerable_n == 0
                               else "mixed")
    return {"n": n, "answerable_n": answerable_n, "answerable": kind,
            "answered": round(mean(float(bool(r["answered"])) for r in rows), 4) if rows else None,
            "correct": round(mean(float(decision_correct(r["answerable"], bool(r["answered"]))) for r in rows), 4)
            if rows else None}


def wrongly_answered(row: dict) -> bool:
    """An answer that is wrong by the gold set: to an unanswerable question, or to an answerable one while
    missing every must_include group (``must_include`` coverage 0; no groups: never wrong)."""
    if not row["answered"]:
        return False
    if not row["answerable"]:
        return True
    return row.get("must_include") == 0.0


def covered_answer(row: dict) -> bool:
    """The calibration outcome: an answerable question answered with every must_include group covered
    (an answerable question without groups counts as covered once answered)."""
    return bool(row["answerable"] and row["answered"] and row.get("fully_covered") in (1.0, None))


def decisions(rows: Sequence[dict]) -> dict[str, object]:
    """The decision table per gold type and overall, and the confidently-wrong rates.

    Each row needs ``type``, ``answerable``, ``answered`` and ``must_include`` (coverage, None when not
    scored). ``confidently_wrong``: share of the unanswerable questions that were answered (1 − refusal
    accuracy; None without unanswerable questions). ``wrong_among_answered``: share of the answered questions
    whose answer is wrong by :func:`wrongly_answered` (None when nothing was answered).
    """
    types = sorted({r["type"] for r in rows})
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in rows if r["answered"]]
    return {
        "by_type": {t: decision_row([r for r in rows if r["type"] == t]) for t in types},
        "overall": decision_row(rows),
        "confidently_wrong": round(mean(float(bool(r["answered"])) for r in unanswerable), 4)
        if unanswerable else None,
        "unanswerable_n": len(unanswerable),
        "wrong_among_answered": round(mean(float(wrongly_answered(r)) for r in answered), 4) if answered else None,
        "answered_n": len(answered),
    }


# ---- calibration ----------------------------------------------------------------------

CALIBRATION_BINS = 10


def calibration(pairs: Sequence[tuple[float | None, bool]], bins: int = CALIBRATION_BINS) -> dict[str, object]:
    """Reliability of confidences: ``pairs`` are (confidence in 0..1 or None, outcome).

    Pairs whose confidence is None are left out (counted in ``left_out``). ``bins`` equal-width bins over
    0..1, each ``[lo, hi)`` (the last one includes 1.0), with ``n``, ``mean_confidence`` and ``accuracy``
    (share of outcomes true; both None for an empty bin). ``ece``: expected calibration error, the
    n-weighted mean of |accuracy − mean_confidence| over the bins; ``brier``: mean (confidence − outcome)².
    Both None when no pair has a confidence (``n`` 0, and ``note`` says so; otherwise ``note`` is None).
    A confidence outside 0..1 (or not a number) is a ValueError.
    """
    scored: list[tuple[float, float]] = []
    for confidence, outcome in pairs:
        if confidence is None:
            continue
        c = float(confidence)
        if not (0.0 <= c <= 1.0):  # NaN fails too
            raise ValueError(f"confidence {confidence!r} is not a probability in 0..1")
        scored.append((c, float(bool(outcome))))
    members: list[list[tuple[float, float]]] = [[] for _ in range(bins)]
    for c, y in scored:
        members[min(math.floor(round(c * bins, 9)), bins - 1)].append((c, y))  # round: 0.3 * 10 is bin 3
    table = [{"lo": round(b / bins, 4), "hi": round((b + 1) / bins, 4), "n": len(inside),
              "mean_confidence": round(mean(c for c, _ in inside), 4) if inside else None,
              "accuracy": round(mean(y for _, y in inside), 4) if inside else None}
             for b, inside in enumerate(members)]
    out: dict[str, object] = {"n": len(scored), "left_out": len(pairs) - len(scored), "bins": table,
                              "ece": None, "brier": None, "note": None}
    if not scored:
        out["note"] = "no item carries a confidence"
        return out
    out["ece"] = round(sum(len(inside) / len(scored) * abs(mean(y for _, y in inside) - mean(c for c, _ in inside))
                           for inside in members if inside), 4)
    out["brier"] = round(mean((c - y) ** 2 for c, y in scored), 4)
    return out
