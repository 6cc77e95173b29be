"""The service over HTTP on 127.0.0.1: cold starts, warm latency, throughput under
8 concurrent clients, streaming first events, memory; and the answer latency of
the product beside the llama-index baseline, in process, on the same questions."""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.measure import pct, serving, warm_latency
from bench.questions import varied_questions
from eval.runner import baseline_system
from index.service import RagService
from rag.settings import Settings

FIRST_QUESTION = "Why did China decline in 2023?"


def sequential_asks(url: str, questions: list[str]) -> tuple[list[float], int]:
    times, errors = [], 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for q in questions:
            started = time.perf_counter()
            r = client.post("/v1/ask", json={"question": q})
            times.append((time.perf_counter() - started) * 1000)
            errors += r.status_code != 200
    return times, errors


def _concurrent(url: str, questions: list[str], clients: int, per_client: int) -> dict:
    def worker(k: int) -> tuple[int, int]:
        ok = bad = 0
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in range(per_client):
                r = client.post("/v1/ask", json={"question": questions[(k * per_client + i) % len(questions)]})
                ok += r.status_code == 200
                bad += r.status_code != 200
        return ok, bad

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(worker, range(clients)))
    seconds = time.perf_counter() - started
    ok = sum(r[0] for r in results)
    return {"requests": ok + sum(r[1] for r in results), "errors": sum(r[1] for r in results),
            "rps": ok / seconds, "clients": clients}


def _stream_firsts(url: str, questions: list[str]) -> dict:
    sources, deltas = [], []
    with httpx.Client(base_url=url, timeout=30) as client:
        for q in questions:
            started = time.perf_counter()
            first_sources = first_delta = None
            with client.stream("POST", "/v1/ask/stream", json={"question": q}) as r:
                for line in r.iter_lines():
                    now = (time.perf_counter() - started) * 1000
                    if line == "event: sources" and first_sources is None:
                        first_sources = now
                    elif line == "event: delta" and first_delta is None:
                        first_delta = now
            sources.append(first_sources)
            if first_delta is not None:
                deltas.append(first_delta)
    return {"sources_p50": pct(sources, 50), "sources_p95": pct(sources, 95),
            "delta_p50": pct(deltas, 50), "delta_p95": pct(deltas, 95)}


def run(quick: bool = False) -> dict:
    data = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    questions = varied_questions(100)
    out: dict = {}
    with serving(data) as server:
        out["cold_start_empty_s"] = server.first_answer_seconds(FIRST_QUESTION)
        sequential_asks(server.url, questions[:30])  # warm
        times, errors = sequential_asks(server.url, questions[: 40 if quick else 100])
        out["ask_p50_ms"], out["ask_p95_ms"], out["ask_errors"] = pct(times, 50), pct(times, 95), errors
        out["concurrent"] = _concurrent(server.url, questions, clients=8, per_client=10 if quick else 25)
        out["stream"] = _stream_firsts(server.url, questions[:20])
        out["serve_rss_mb"] = server.rss_mb()
    with serving(data) as server:
        out["cold_start_existing_s"] = server.first_answer_seconds(FIRST_QUESTION)
    service = RagService(Settings(data_dir=data))
    sample = questions[: 30 if quick else 100]
    out["product_in_process"] = warm_latency(service.ask, sample)
    out["baseline_in_process"] = warm_latency(baseline_system(service).ask, sample)
    out["product_vs_baseline_p50"] = out["product_in_process"]["p50"] / out["baseline_in_process"]["p50"]
    service.close()
    return out
