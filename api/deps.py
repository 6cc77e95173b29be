"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.jobs import JobRunner
from api.metrics import Metrics
from index.service import RagService
from rag.settings import Settings


def get_service(request: Request) -> RagService:
    return request.app.state.service


def get_jobs(request: Request) -> JobRunner:
    return request.app.state.jobs


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


ServiceDep = Annotated[RagService, Depends(get_service)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
