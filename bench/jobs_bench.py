"""Asking while a big upload is ingested (issue: a 10 MB upload must not starve serving).

One real `rag serve` (real embedder, bundled corpus) per job-thread setting: sequential /v1/ask latency idle,
then a 10 MB text uploaded (a background job) and sequential asks for a fixed window while the job embeds;
p95 during / p95 idle is the figure (target ≤ 2×). Measured for `RAG_API_JOB_THREADS=1` (the default: the
job's embedder leaves a core to serving) and for all cores, so the choice is visible.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import httpx

from bench.measure import pct, serving
from bench.questions import varied_questions
from bench.serve_bench import FIRST_QUESTION, sequential_asks
from rag.settings import BUNDLED_CORPUS


def big_text(size: int) -> bytes:
    """``size`` bytes of article sentences, each copy numbered so chunks differ (nothing is reused)."""
    corpus = "\n".join(p.read_text(encoding="utf-8") for p in sorted(BUNDLED_CORPUS.iterdir()))
    parts, total, copy = [], 0, 0
    while total < size:
        block = f"\n\nCopy {copy} of the collected reports.\n" + corpus
        parts.append(block)
        total += len(block.encode())
        copy += 1
    return "".join(parts).encode()[:size]


def _one_setting(threads: int, content: bytes, window_s: float, questions: list[str]) -> dict:
    data = Path(tempfile.mkdtemp(prefix=f"bench-jobs-{threads}-"))
    with serving(data, RAG_API_JOB_THREADS=str(threads)) as server:
        server.first_answer_seconds(FIRST_QUESTION)
        sequential_asks(server.url, questions[:30])  # warm
        idle, idle_errors = sequential_asks(server.url, questions[:80])
        response = httpx.post(f"{server.url}/v1/documents", files=[("files", ("big.txt", content))], timeout=120)
        response.raise_for_status()
        job_id = response.json()["job"]["id"]
        during: list[float] = []
        errors = 0
        started = time.perf_counter()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            while time.perf_counter() - started < window_s:
                asked = time.perf_counter()
                errors += client.post("/v1/ask", json={"question": questions[len(during) % 80]}).status_code != 200
                during.append((time.perf_counter() - asked) * 1000)
            job = client.get(f"/v1/jobs/{job_id}").json()["job"]
        elapsed = time.perf_counter() - started
        (f,) = job["files"]
        return {
            "job_threads": threads,
            "idle_p50_ms": pct(idle, 50), "idle_p95_ms": pct(idle, 95),
            "during_p50_ms": pct(during, 50), "during_p95_ms": pct(during, 95),
            "p95_ratio": pct(during, 95) / pct(idle, 95),
            "asks_during": len(during), "errors": idle_errors + errors,
            "job_state": job["state"], "chunks_embedded": f["chunks_embedded"], "chunks_total": f["chunks_total"],
            "job_chunks_per_s": f["chunks_embedded"] / elapsed,
        }


def run(quick: bool = False) -> dict:
    size = 2_000_000 if quick else 10_000_000
    content = big_text(size)
    questions = varied_questions(100)
    window = 30.0 if quick else 90.0
    settings = [1, os.cpu_count() or 2]
    return {"upload_bytes": len(content), "window_s": window,
            "settings": [_one_setting(t, content, window, questions) for t in settings]}
