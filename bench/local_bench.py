"""Written answers from the local model, beside the extractive mode, on the bundled corpus, in process.

For each answerable dev question that passes the confidence gate (the model is
only called for those), the answer is streamed and timed: the first streamed
token of the model's text and the whole answer. Three configurations of the
local model on the same questions: the prompt of best sentences with their
neighbours (the default) with 1 and with 2 threads, and whole passages (what
the prompt was before) as the baseline. The extractive mode is timed too, alone and with the reading check
(``RAG_ANSWER_CHECK=local``: the local model reads each answer's quotes, 2 threads).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.measure import pct
from rag.pipeline import AnswerEvent, DeltaEvent
from index.service import RagService
from rag.settings import REPO_ROOT, Settings

GOLD_DEV = REPO_ROOT / "eval" / "data" / "gold_dev.jsonl"


def gated_questions(service: RagService, limit: int) -> list[str]:
    """Answerable dev questions whose confidence passes the gate, in file order."""
    out: list[str] = []
    for line in GOLD_DEV.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if not item.get("answerable", True):
            continue
        retrieval = service.retrieve(item["question"])
        if service.assess(item["question"], retrieval).answers():
            out.append(item["question"])
        if len(out) == limit:
            break
    return out


def timed_stream(service: RagService, question: str, mode: str) -> dict[str, Any]:
    started = time.perf_counter()
    first = None
    answer = None
    for event in service.ask_stream(question, mode=mode):
        if isinstance(event, DeltaEvent) and first is None and event.text.strip():
            first = time.perf_counter() - started
        if isinstance(event, AnswerEvent):
            answer = event.answer
    total = time.perf_counter() - started
    assert answer is not None
    return {"first_token_s": first, "total_s": total, "answered": answer.answerable, "mode": answer.mode,
            "fallback": answer.fallback, "dropped": answer.dropped_citations}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    firsts = [r["first_token_s"] for r in runs if r["first_token_s"] is not None]
    totals = [r["total_s"] for r in runs]
    return {"questions": len(runs), "first_token_p50_s": pct(firsts, 50), "first_token_p95_s": pct(firsts, 95),
            "total_p50_s": pct(totals, 50), "total_p95_s": pct(totals, 95),
            "answered": sum(r["answered"] for r in runs), "fallbacks": sum(bool(r["fallback"]) for r in runs),
            "dropped_per_answer": sum(r["dropped"] for r in runs) / max(1, len(runs))}


def run(model: str = "1.5b", questions: int = 8) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        settings.local.model = model
        settings.local.ctx = 4096
        settings.llm.timeout = 300
        settings.llm.fallback = False
        # the model file is assembled once per machine, in the usual data directory, not per benchmark run
        settings.local.model = str(_assembled(model)) if model in ("0.5b", "1.5b") else model
        service = RagService(settings)
        service.ingest()
        asked = gated_questions(service, questions)
        result: dict[str, Any] = {"model": model, "questions": asked}
        result["extractive"] = _summary([timed_stream(service, q, "extractive") for q in asked])
        service.close()
        configurations = (("sentences_1_thread", "sentences", 1), ("sentences_2_threads", "sentences", 2),
                          ("passages_2_threads", "passages", 2))
        for name, evidence, threads in configurations:
            configured = settings.model_copy(deep=True)
            configured.llm.evidence = evidence
            configured.local.threads = threads
            service = RagService(configured)  # the same index; its own answerer and model server
            timed_stream(service, asked[0], "local")  # load the model, read the fixed instructions once
            result[name] = _summary([timed_stream(service, q, "local") for q in asked])
            service.close()
        checked = settings.model_copy(deep=True)  # extractive answers, each read by the local model
        checked.answer.check, checked.local.threads = "local", 2
        service = RagService(checked)
        timed_stream(service, asked[0], "extractive")
        result["extractive_checked_2_threads"] = _summary([timed_stream(service, q, "extractive") for q in asked])
        service.close()
    return result


def _assembled(model: str) -> Path:
    from rag.local_model import CATALOG, assemble

    return assemble(CATALOG[model], Settings().data_dir / "models")
