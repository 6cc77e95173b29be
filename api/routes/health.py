"""Liveness, readiness and metrics (open even when an API key is set)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import MetricsDep, ServiceDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="The store is reachable and the index loaded")
def readyz(svc: ServiceDep) -> dict:
    svc.check_store()
    documents = svc.document_count()
    return {"status": "ready" if documents else "empty", "documents": documents, "chunks": svc.chunk_count()}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(svc: ServiceDep, registry: MetricsDep) -> Response:
    return registry.render(svc.document_count(), svc.chunk_count())
