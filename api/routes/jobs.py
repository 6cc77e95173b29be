"""Upload jobs: what a big upload (202) became, and how far it is."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import JobsDep
from api.jobs import JobList, JobResponse

router = APIRouter(prefix="/v1/jobs", tags=["documents"])


@router.get("", response_model=JobList, summary="Recent upload jobs, newest first")
def list_jobs(jobs: JobsDep) -> JobList:
    return JobList(jobs=jobs.jobs())


@router.get("/{job_id}", response_model=JobResponse, summary="One upload job: state, per-file status, progress")
def get_job(job_id: str, jobs: JobsDep) -> JobResponse:
    return JobResponse(job=jobs.get(job_id))
