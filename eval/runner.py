"""Run a gold set through a system and score every item.

A *system* is anything that can retrieve, answer, and show a passage by id:
the product (``product_system``) and the llama-index baseline
(``baseline_system``) are measured the same way in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tqdm import tqdm

from eval.baseline import LlamaIndexBaseline
from eval.gold import GoldItem
from eval.metrics import (Span, aggregate, answer_scores, calibration, citation_scores, covered_answer, decisions,
                          percentile, retrieval_scores)
from index.service import RagService
from rag.retrieval import Retrieval
from rag.support import SupportChecker
from rag.types import Answer, Hit

RETRIEVAL_DEPTH = 10
STAGES = ("retrieve", "generate", "verify", "total")


@dataclass
class System:
    name: str
    retrieve: Callable[[str, int], Retrieval]
    ask: Callable[[str], Answer]
    passage: Callable[[str], Hit | None]


def product_system(service: RagService, mode: str | None = None) -> System:
    return System("rag-cited", service.retrieve, lambda q: service.ask(q, mode=mode), service.passage)


def baseline_system(service: RagService, mode: str | None = None, over_stored_chunks: bool = False) -> System:
    """The llama-index baseline over the service's documents: its own 256-token chunks (embedded anew),
    or, with ``over_stored_chunks``, a ``VectorStoreIndex`` over the service's Chroma collection."""
    documents = [(d.doc_id, d.title, service.document(d.doc_id).text or "") for d in service.documents()]
    baseline = (LlamaIndexBaseline.over_vector_store(documents, service.embedder, service.vector_store)
                if over_stored_chunks else LlamaIndexBaseline(documents, service.embedder))
    pipeline = service.build_pipeline(baseline)
    return System("llama-index baseline", baseline.retrieve, lambda q: pipeline.ask(q, mode=mode), baseline.passage)


def _spans(hits: list[Hit]) -> list[Span]:
    return [(h.doc_id, h.start, h.end) for h in hits]


def score_item(item: GoldItem, system: System, checker: SupportChecker) -> dict[str, Any]:
    retrieved = system.retrieve(item.question, RETRIEVAL_DEPTH).hits
    answer = system.ask(item.question)
    row: dict[str, Any] = {"id": item.id, "type": item.type, "question": item.question,
                           "answerable": item.answerable, "answered": answer.answerable,
                           "answer": answer.answer, "retrieved": [h.chunk_id for h in retrieved],
                           "citations": [c.model_dump() for c in answer.citations],
                           "timings_ms": answer.timings_ms.model_dump(),
                           "confidence": answer.confidence, "mode": answer.mode,
                           "dropped_citations": answer.dropped_citations, "fallback": answer.fallback}
    scores: dict[str, Any] = {}
    if item.answerable and item.spans:
        scores["retrieval"] = retrieval_scores(_spans(retrieved), item.spans)
    scores["answer"] = answer_scores(answer.answer, item.answerable, answer.answerable, item.must_include)
    by_number = {c.n: c for c in answer.citations}
    passages = {c.n: system.passage(c.chunk_id) for c in answer.citations}
    citation_supported = []
    for c in answer.citations:
        carriers = [s.text for s in answer.sentences if c.n in s.citations]
        hit = passages[c.n]
        citation_supported.append(bool(hit) and any(checker.check(t, hit) for t in carriers))
    sentence_supported, faithful = [], []
    for sentence in answer.sentences:
        cited = [passages[n] for n in sentence.citations if passages.get(n)]
        sentence_supported.append(any(checker.check(sentence.text, h) for h in cited))
        faithful.append(bool(cited) and checker.check(sentence.text, _joined(cited)) is not None)
    if answer.answerable:
        scores["citations"] = citation_scores(
            [(c.doc_id, c.start, c.end) for c in answer.citations], citation_supported, sentence_supported,
            item.spans)
        scores["citations"]["quote_chars"] = _mean([len(c.quote) for c in answer.citations])
        scores["citations"]["chunk_chars"] = _mean([len(passages[n].text) for n in by_number if passages.get(n)])
        scores["faithfulness"] = {"supported_sentences": _mean([float(f) for f in faithful])}
    row["scores"] = scores
    row["failed"], row["why"] = _failure(item, answer, scores)
    return row


def _joined(hits: list[Hit]) -> Hit:
    """The cited passages read as one (for the faithfulness check across passages)."""
    text = "\n".join(h.text for h in hits)
    return Hit(chunk_id="+".join(h.chunk_id for h in hits), doc_id="(joined)", title="", start=0, end=len(text),
               text=text, score=0.0)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _failure(item: GoldItem, answer: Answer, scores: dict[str, Any]) -> tuple[bool, str]:
    if not item.answerable:
        return (answer.answerable, "answered an unanswerable question") if answer.answerable else (False, "")
    if not answer.answerable:
        return True, "refused an answerable question"
    if scores["answer"]["fully_covered"] == 0.0:
        return True, "answer misses a must-include fact"
    if item.spans and scores.get("citations", {}).get("gold_cited") == 0.0:
        return True, "cites none of the gold sources"
    return False, ""


def evaluate(system: System, items: list[GoldItem], checker: SupportChecker,
             progress: bool = False, warm_all: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Ask every question once (warm: models loaded, caches primed, the same for every system
    whatever ran before), then score every item; returns (metrics, per-item rows). With a chat model
    (seconds per answer) ``warm_all=False`` warms with the first question only."""
    for item in items if warm_all else items[:1]:
        system.ask(item.question)
    rows = [score_item(item, system, checker)
            for item in tqdm(items, desc=f"eval {system.name}", unit="q", disable=not progress, leave=False)]
    return summarise(rows), rows


#: What a confidence is paired with in ``metrics.calibration`` (see README, Evaluation).
CALIBRATION_OUTCOME = "answerable, answered, and every must_include group covered"


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = _summary_of(rows)
    metrics["by_type"] = {t: _summary_of([r for r in rows if r["type"] == t])
                          for t in sorted({r["type"] for r in rows})}
    outcomes = [_outcome_of(r) for r in rows]
    metrics["decisions"] = decisions(outcomes)
    metrics["calibration"] = {**calibration([(r.get("confidence"), covered_answer(o))
                                             for r, o in zip(rows, outcomes)]),
                              "outcome": CALIBRATION_OUTCOME}
    return metrics


def _outcome_of(row: dict[str, Any]) -> dict[str, Any]:
    """What the decision and calibration metrics read from a per-item row."""
    answer = row["scores"].get("answer") or {}
    return {"type": row["type"], "answerable": row["answerable"], "answered": bool(row["answered"]),
            "must_include": answer.get("must_include"), "fully_covered": answer.get("fully_covered")}


def _summary_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def part(name: str) -> list[dict]:
        return [r["scores"][name] for r in rows if name in r["scores"]]

    answers = part("answer")
    refusal = [{"accuracy": a["refusal_correct"]} for a in answers if a["refusal_correct"] is not None]
    answer_rows = [{k: a[k] for k in ("must_include", "fully_covered", "false_refusal")}
                   for a in answers if a["refusal_correct"] is None]
    latency = {stage: {"p50": percentile([r["timings_ms"][stage] for r in rows], 50),
                       "p95": percentile([r["timings_ms"][stage] for r in rows], 95)} for stage in STAGES}
    return {"retrieval": aggregate(part("retrieval")), "answer": aggregate(answer_rows),
            "refusal": aggregate(refusal), "citations": aggregate(part("citations")),
            "faithfulness": aggregate(part("faithfulness")), "latency_ms": latency, "drafts": _drafts(rows),
            "questions": len(rows)}


def _drafts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What verification removed from the drafts, and how often a chat model failed and the answer fell back."""
    return {"dropped_citations_per_answer": _mean([float(r.get("dropped_citations") or 0) for r in rows]),
            "fallback_rate": _mean([float(bool(r.get("fallback"))) for r in rows])}
