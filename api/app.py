"""The FastAPI app: ``create_app(settings)`` builds it; ``rag serve`` runs it.

On start-up it opens the index and, when the store is empty, ingests the
configured corpus (the bundled one by default), logging progress.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Annotated, AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from api.errors import install_error_handlers
from api.schemas import AskRequest
from rag.service import RagService
from rag.settings import Settings, get_settings
from rag.types import Answer

log = logging.getLogger("rag.api")


def get_service(request: Request) -> RagService:
    return request.app.state.service


Service = Annotated[RagService, Depends(get_service)]


def create_app(settings: Settings | None = None, service: RagService | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = service or RagService(settings)
        if svc.docstore.document_count() == 0:
            log.info("empty index: ingesting %s", settings.corpus_dir)
            report = await run_in_threadpool(svc.ingest, settings.corpus_dir)
            log.info("ingested: %s", report.summary())
        app.state.service = svc
        yield
        svc.close()

    app = FastAPI(title="rag-cited", version="0.1.0", lifespan=lifespan,
                  description="Answers with every sentence cited to the exact source passage.")
    install_error_handlers(app)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(svc: Service) -> dict:
        svc.vectors.heartbeat()
        return {"status": "ready", "documents": svc.docstore.document_count(), "chunks": svc.docstore.chunk_count()}

    @app.post("/v1/ask", response_model=Answer)
    def ask(body: AskRequest, svc: Service) -> Answer:
        return svc.ask(body.question, top_k=body.top_k, mode=body.mode)

    return app
