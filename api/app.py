"""The FastAPI app: ``create_app(settings)`` builds it; ``rag serve`` runs it.

On start-up it opens the index and, when the store is empty, ingests the
configured corpus (the bundled one by default), logging progress. It serves
the JSON API under /v1, OpenAPI docs at /docs, operations routes, and the web
chat UI at / (static files, no build step).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.auth import ApiKeyMiddleware
from api.tracing import RequestIdMiddleware
from api.errors import UnexpectedErrorMiddleware, error_responses, install_error_handlers
from api.metrics import Metrics, install_metrics
from api.jobs import JobRunner, QueueFullError
from api.routes import ask, chat, documents, health, jobs
from api.routes.documents import TooLargeError, UnsupportedMediaError
from index.service import RagService
from rag.settings import Settings, get_settings

log = logging.getLogger("rag.api")
STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None, service: RagService | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = service or await run_in_threadpool(RagService, settings)
        if svc.document_count() == 0:
            log.info("empty index: ingesting %s", settings.corpus_dir)
            report = await run_in_threadpool(svc.ingest, settings.corpus_dir)
            log.info("ingested: %s", report.summary())
        await run_in_threadpool(_warm_up, svc)
        app.state.service = svc
        app.state.jobs = JobRunner(svc, Path(settings.data_dir) / "jobs", settings.api.job_queue,
                                   settings.api.jobs_kept)
        yield
        await run_in_threadpool(app.state.jobs.stop)
        svc.close()

    app = FastAPI(title="rag-cited", version="0.1.0", lifespan=lifespan,
                  description="Answers with every sentence cited to the exact source passage.")
    app.state.settings = settings
    app.state.metrics = Metrics()
    install_error_handlers(app, extra={TooLargeError: 413, UnsupportedMediaError: 415, QueueFullError: 429})
    app.add_middleware(ApiKeyMiddleware, key=settings.api.key)  # /v1 only; before any body is read
    install_metrics(app, app.state.metrics)  # counts the 401s too
    app.add_middleware(UnexpectedErrorMiddleware)  # the generic 500, with the request id
    app.add_middleware(RequestIdMiddleware)  # outermost: every response and log line carries the request id

    # each router's error statuses, documented with the envelope (api.errors.ERROR_STATUSES says what they mean;
    # FastAPI adds 422 wherever a route validates input)
    answers = error_responses(400, 401, 409, 502, 503, 504)
    for router, errors in ((ask.router, answers), (chat.router, answers),
                           (documents.router, error_responses(400, 401, 404, 413, 415, 429, 502, 503, 504)),
                           (jobs.router, error_responses(401, 404)), (health.router, {})):
        app.include_router(router, responses=errors)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def _warm_up(svc: RagService) -> None:
    """Load the answer path once so the first user request is not the slow one (a chat model is not asked;
    the local model's server is started)."""
    try:
        svc.ask("warm up", mode="extractive")
        if svc.settings.answer.mode == "local":
            svc.start_answerer("local")  # assembles the model and starts its server
    except Exception as exc:  # an empty or odd index, a missing model must not stop the server from starting
        log.info("warm-up skipped: %s", exc)
