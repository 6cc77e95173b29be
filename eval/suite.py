"""``rag eval``: a gold set through this product and the baseline, into one result.

Result JSON (stable keys, documented in README):
``{"system": {...}, "gold": path, "gold_problems": [...], "metrics": {...}, "baseline": {...} | null,
"items": [...], "baseline_items": [...]}``; a metric is addressed as a dotted path
under ``metrics``, e.g. ``retrieval.recall@5``, ``latency_ms.total.p50``,
``decisions.by_type.unanswerable.correct``, ``decisions.confidently_wrong`` or ``calibration.ece``.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from eval.gold import load_gold, locate_sources
from eval.runner import baseline_system, evaluate, product_system
from index.ingest import IngestReport
from rag.errors import InvalidInputError, NotFoundError
from index.service import RagService
from rag.settings import Settings

#: Metrics where lower is better: a --min gate on them means "at most".
LOWER_IS_BETTER = (".latency_ms.", ".answer.false_refusal",  # matched anywhere, by_type paths included
                   ".decisions.confidently_wrong", ".decisions.wrong_among_answered", ".calibration.ece",
                   ".calibration.brier", ".drafts.")


def corpus_data_dir(settings: Settings, corpus_dir: Path) -> Path:
    """Where ``rag eval --corpus DIR`` keeps DIR's index: ``<data_dir>/eval-corpora/<name>-<hash>``, the hash
    taken over DIR's resolved absolute path, so two folders of the same name never share an index."""
    resolved = Path(corpus_dir).expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:12]
    return Path(settings.data_dir) / "eval-corpora" / f"{resolved.name or 'root'}-{digest}"


def service_for_corpus(settings: Settings, corpus_dir: Path, *,
                       progress: bool = False) -> tuple[RagService, IngestReport]:
    """A service over its own index of ``corpus_dir`` (see :func:`corpus_data_dir`), brought up to date
    first: ingestion is incremental, so unchanged files cost nothing, and files gone from the folder are
    pruned. With a Chroma server the collection gets the same suffix, so the evaluation never writes into
    the served collection; with ``RAG_DATABASE_URL`` the corpus's docstore is still the embedded one in its
    folder, so it never writes into the shared database either. Raises InvalidInputError when ``corpus_dir`` is not a folder."""
    folder = Path(corpus_dir).expanduser()
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "no such folder"
        raise InvalidInputError(f"--corpus {corpus_dir}: {what}", path=str(corpus_dir))
    folder = folder.resolve()
    data_dir = corpus_data_dir(settings, folder)
    update: dict[str, Any] = {"data_dir": data_dir, "corpus_dir": folder}
    if settings.chroma.host:
        update["chroma"] = settings.chroma.model_copy(
            update={"collection": f"{settings.chroma.collection}-{data_dir.name.rsplit('-', 1)[1]}"})
    # nor into the shared database: its documents and keywords live in the corpus's own embedded docstore
    update["database_url"] = None
    data_dir.mkdir(parents=True, exist_ok=True)
    service = RagService(settings.model_copy(update=update))
    try:
        report = service.ingest(folder, prune=True, progress=progress)
    except BaseException:
        service.close()
        raise
    return service, report


def run_suite(service: RagService, gold_path: Path, *, baseline: bool = True, mode: str | None = None,
              progress: bool = False) -> dict[str, Any]:
    items = load_gold(gold_path)
    if service.document_count() == 0:
        service.ingest(progress=progress)

    def text_of(doc_id: str) -> str | None:
        try:
            return service.document(doc_id).text
        except NotFoundError:
            return None

    problems = locate_sources(items, text_of)
    checker = service.checker
    s = service.settings
    result: dict[str, Any] = {
        "system": {"name": "rag-cited", "mode": mode or s.answer.mode, "embedder": service.embedder.model_id,
                   "chunk_size": s.chunk.size, "top_k": s.retrieve.top_k, "dense_weight": s.retrieve.dense_weight,
                   "keyword_weight": s.retrieve.keyword_weight, "documents": service.document_count(),
                   "chunks": service.chunk_count(),
                   "reading_check": (f"{s.answer.check} (threshold {s.answer.check_threshold:g})"
                                     if s.answer.check != "off" else "off")},
        "gold": str(gold_path), "gold_problems": problems,
    }
    warm_all = (mode or s.answer.mode) == "extractive"  # a chat model takes seconds per answer: warm once
    result["metrics"], result["items"] = evaluate(product_system(service, mode), items, checker, progress, warm_all)
    result["baseline"], result["baseline_items"] = (
        evaluate(baseline_system(service, mode), items, checker, progress, warm_all) if baseline else (None, []))
    return result


def metric_value(metrics: dict[str, Any], path: str) -> Any:
    node: Any = metrics
    for part in _split_path(path):
        if not isinstance(node, dict) or part not in node:
            raise InvalidInputError(f"unknown metric {path!r}", metric=path)
        node = node[part]
    return node


def _split_path(path: str) -> list[str]:
    """``retrieval.recall@5`` → [retrieval, recall@5]; a leading ``metrics.`` is allowed."""
    parts = path.split(".")
    return parts[1:] if parts and parts[0] == "metrics" else parts


def parse_gate(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        bound = float(value)
    except ValueError:
        raise InvalidInputError(f"a gate is METRIC=NUMBER, not {text!r}", gate=text) from None
    if not math.isfinite(bound):
        raise InvalidInputError(f"a gate needs a finite number, not {value!r}", gate=text)
    return name.strip(), bound


def unmet_gates(metrics: dict[str, Any], gates: list[tuple[str, float]]) -> list[str]:
    """Human-readable lines for every gate the metrics do not meet."""
    unmet = []
    for name, bound in gates:
        value = metric_value(metrics, name)
        if isinstance(value, dict):
            raise InvalidInputError(f"{name!r} is a group of metrics; name one of: {', '.join(value)}", metric=name)
        at_most = any(p in f".{_strip(name)}" for p in LOWER_IS_BETTER)
        if value is None or (value > bound if at_most else value < bound):
            unmet.append(f"{name} = {value} ({'above the maximum' if at_most else 'below the minimum'} {bound})")
    return unmet


def _strip(name: str) -> str:
    return name[len("metrics."):] if name.startswith("metrics.") else name
