"""Liveness, readiness and metrics (open even when an API key is set)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from api.deps import MetricsDep, ServiceDep
from api.errors import error_responses
from api.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, summary="Both stores are reachable and the index loaded",
            responses=error_responses(503))
def readyz(svc: ServiceDep) -> dict:
    svc.check_store()
    documents = svc.document_count()
    return {"status": "ready" if documents else "empty", "documents": documents, "chunks": svc.chunk_count(),
            "stores": svc.stores()}


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(svc: ServiceDep, registry: MetricsDep) -> Response:
    return registry.render(svc.document_count(), svc.chunk_count())
