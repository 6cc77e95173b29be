"""Prometheus metrics: requests and latencies by route, ask stage timings, corpus size."""

from __future__ import annotations

import time
from typing import Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from rag.types import Timings

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.3, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("rag_http_requests_total", "HTTP requests by route, method and status.",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("rag_http_request_seconds", "HTTP request latency by route.", ["route"],
                                 buckets=_BUCKETS, registry=self.registry)
        self.stage = Histogram("rag_ask_stage_seconds", "Ask pipeline stage durations.", ["stage"],
                               buckets=_BUCKETS, registry=self.registry)
        self.documents = Gauge("rag_documents", "Documents in the index.", registry=self.registry)
        self.chunks = Gauge("rag_chunks", "Chunks in the index.", registry=self.registry)

    def observe_answer(self, timings: Timings) -> None:
        for stage in ("retrieve", "generate", "verify", "total"):
            self.stage.labels(stage).observe(getattr(timings, stage) / 1000)

    def render(self, documents: int, chunks: int) -> Response:
        self.documents.set(documents)
        self.chunks.set(chunks)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def count_requests(request: Request, call_next: Callable) -> Response:
        started = time.perf_counter()
        status = 500  # an exception escaping the app becomes a 500 outside this middleware
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            path = getattr(request.scope.get("route"), "path", None) or "unmatched"
            metrics.requests.labels(path, request.method, str(status)).inc()
            metrics.latency.labels(path).observe(time.perf_counter() - started)
