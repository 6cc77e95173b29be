"""Upload jobs: a big upload is ingested in the background, one job at a time, with progress.

``submit`` spools the files to ``RAG_DATA_DIR/jobs/<id>/`` and queues the job
(a full queue is a :class:`QueueFullError`, HTTP 429); one worker thread runs
the jobs in order through :meth:`RagService.add_files` with the background
embedder, so asks keep the other cores. Each job's record is a JSON file
beside the spool, rewritten atomically at every change of state; progress
(chunks embedded, share done, seconds left) lives in memory.

A job never outlives its process: at start-up a job recorded as queued or
running is marked failed with the reason, and uploading the same files again
completes it (ingestion is idempotent: files already ingested come back
``unchanged``). On shutdown the running job stops at its next embedding batch,
before committing that file, and is marked failed the same way.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from index.service import FileResult, RagService, upload_name
from rag.errors import NotFoundError, RagError

log = logging.getLogger("rag.jobs")

INTERRUPTED = ("the server stopped before this job finished; upload the files again to complete it "
               "(files already ingested are kept and come back unchanged)")


FileState = Literal["queued", "running", "added", "updated", "unchanged", "skipped", "failed"]


class JobFile(BaseModel):
    filename: str = Field(..., description="The name the file was sent with.")
    doc_id: str = Field(..., description="The document id it is stored under.")
    size: int = Field(..., description="Bytes received.")
    state: FileState = "queued"
    reason: str | None = Field(None, description="Why it was skipped or failed.")
    chunks: int | None = Field(None, description="Chunks stored for it, once ingested.")
    chunks_embedded: int = 0
    chunks_total: int | None = Field(None, description="Chunks to embed, once the file is read and chunked.")


class JobProgress(BaseModel):
    fraction: float = Field(0.0, description="Share of the job's bytes ingested, 0..1.")
    chunks_embedded: int = 0
    chunks_total: int = Field(0, description="Chunks to embed in the files read so far.")
    seconds_left: float | None = Field(None, description="Estimate from the rate so far; null before there is one.")


class Job(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed"]
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    reason: str | None = Field(None, description="Why the job failed (each file's own outcome is in `files`).")
    files: list[JobFile]
    progress: JobProgress = JobProgress()


class JobResponse(BaseModel):
    job: Job


class JobList(BaseModel):
    jobs: list[Job] = Field(..., description="Newest first.")


class QueueFullError(RagError):
    code = "queue_full"


class _Stopping(Exception):
    """Raised inside ingestion to stop the running job at the next embedding batch."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


class JobRunner:
    def __init__(self, service: RagService, folder: Path, queue_size: int, kept: int) -> None:
        self.service = service
        self.folder = folder
        self.kept = kept
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._started_at: dict[str, float] = {}
        self._stopping = threading.Event()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._load()
        self._thread = threading.Thread(target=self._work, name="upload-jobs", daemon=True)
        self._thread.start()

    # ---- the API's side -------------------------------------------------------

    def submit(self, files: list[tuple[str, bytes]]) -> Job:
        """Queue an upload (names already checked); the returned snapshot is the job as queued."""
        names = [upload_name(name) for name, _ in files]
        job = Job(id=uuid.uuid4().hex[:16], state="queued", created=_now(),
                  files=[JobFile(filename=name, doc_id=doc_id, size=len(content))
                         for (name, content), doc_id in zip(files, names)])
        spool = self.folder / job.id
        spool.mkdir()
        for i, (_, content) in enumerate(files):
            (spool / str(i)).write_bytes(content)
        with self._lock:
            try:
                self._queue.put_nowait(job.id)
            except queue.Full:
                shutil.rmtree(spool, ignore_errors=True)
                raise QueueFullError(f"{self._queue.maxsize} upload jobs are waiting already; try again later",
                                     retry_after=self._retry_after()) from None
            self._jobs[job.id] = job
            self._save(job)
            return job.model_copy(deep=True)

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id!r} (finished jobs are kept for the last {self.kept})",
                                    job_id=job_id)
            return self._snapshot(job)

    def jobs(self) -> list[Job]:
        """Every remembered job, newest first."""
        with self._lock:
            return [self._snapshot(j) for j in sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)]

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker: the running job ends at its next embedding batch and is marked failed."""
        self._stopping.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout)

    # ---- the worker's side ------------------------------------------------------

    def _work(self) -> None:
        _lower_priority()
        while not self._stopping.is_set():
            job_id = self._queue.get()
            if job_id is None or self._stopping.is_set():
                break
            self._run(job_id)
        with self._lock:  # what is still queued will not run in this process
            for job in self._jobs.values():
                if job.state in ("queued", "running"):
                    self._finish(job, "failed", INTERRUPTED)

    def _run(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs[job_id]
            job.state, job.started = "running", _now()
            self._started_at[job_id] = time.monotonic()
            self._save(job)
        spool = self.folder / job_id
        try:
            files = [(f.filename, (spool / str(i)).read_bytes()) for i, f in enumerate(job.files)]
            self.service.add_files(files, progress=_Progress(self, job), background=True)
            state, reason = "done", None
        except _Stopping:
            state, reason = "failed", INTERRUPTED
        except RagError as exc:
            state, reason = "failed", exc.message
        except Exception:  # noqa: BLE001 — the worker must outlive any one job; the traceback is logged
            log.exception("upload job %s failed", job_id)
            state, reason = "failed", f"internal error; quote job id {job_id} when reporting it"
        with self._lock:
            for f in job.files:
                if f.state in ("queued", "running"):
                    f.state, f.reason = "failed", reason
            self._finish(job, state, reason)
            self._forget_old()

    def _finish(self, job: Job, state: str, reason: str | None) -> None:
        job.state, job.reason, job.finished = state, reason, _now()
        shutil.rmtree(self.folder / job.id, ignore_errors=True)
        self._save(job)
        log.info("upload job %s %s: %s", job.id, state,
                 ", ".join(f"{f.doc_id} {f.state}" for f in job.files) + (f" ({reason})" if reason else ""))

    # ---- records ------------------------------------------------------------------

    def _record(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def _save(self, job: Job) -> None:
        tmp = self.folder / f".{job.id}.json.tmp"
        tmp.write_text(job.model_dump_json(), encoding="utf-8")
        os.replace(tmp, self._record(job.id))

    def _load(self) -> None:
        """Read the remembered jobs; one left queued or running by a previous process has failed."""
        for record in self.folder.glob("*.json"):
            try:
                job = Job.model_validate(json.loads(record.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                log.warning("unreadable job record %s (%s); ignored", record.name, exc)
                continue
            self._jobs[job.id] = job
            if job.state in ("queued", "running"):
                for f in job.files:
                    if f.state in ("queued", "running"):
                        f.state, f.reason = "failed", INTERRUPTED
                self._finish(job, "failed", INTERRUPTED)
        for leftover in self.folder.iterdir():  # spools of jobs that are no longer running
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
        self._forget_old()

    def _forget_old(self) -> None:
        finished = sorted((j for j in self._jobs.values() if j.state in ("done", "failed")),
                          key=lambda j: j.created, reverse=True)
        for job in finished[self.kept:]:
            del self._jobs[job.id]
            self._started_at.pop(job.id, None)
            self._record(job.id).unlink(missing_ok=True)

    # ---- progress -------------------------------------------------------------------

    def _snapshot(self, job: Job) -> Job:
        """A copy with the progress figures of now (call with the lock held)."""
        out = job.model_copy(deep=True)
        total = sum(f.size for f in job.files) or 1
        done = 0.0
        for f in job.files:
            if f.state not in ("queued", "running"):
                done += f.size
            elif f.state == "running" and f.chunks_total:
                done += f.size * f.chunks_embedded / f.chunks_total
        out.progress.fraction = 1.0 if job.state == "done" else round(done / total, 4)
        out.progress.chunks_embedded = sum(f.chunks_embedded for f in job.files)
        out.progress.chunks_total = sum(f.chunks_total or 0 for f in job.files)
        started = self._started_at.get(job.id)
        if job.state == "running" and started is not None and 0 < done < total:
            elapsed = time.monotonic() - started
            out.progress.seconds_left = round(elapsed * (total - done) / done, 1)
        return out

    def _retry_after(self) -> int:
        """Seconds until a queue place is likely free: the running job's estimate, within 5 s … 5 min."""
        running = [self._snapshot(j) for j in self._jobs.values() if j.state == "running"]
        left = running[0].progress.seconds_left if running else None
        return int(min(300, max(5, left or 30)))


JOB_NICENESS = 10  # 19 starved the job under steady asks (1.4 chunks/s); 10 leaves it ~10% of a busy core


def _lower_priority() -> None:
    """Run this thread (and the parse worker it starts) at the lowest CPU priority: on Linux niceness is per
    thread, so asks preempt the job's embedding instead of sharing the cores with it. Elsewhere a no-op."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICENESS)
    except (AttributeError, OSError):
        pass


class _Progress:
    """Carries :meth:`RagService.add_files` reports into the job (and stops it when the runner stops)."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self.runner, self.job = runner, job

    def started(self, index: int) -> None:
        if self.runner._stopping.is_set():
            raise _Stopping()
        with self.runner._lock:
            self.job.files[index].state = "running"

    def embedded(self, index: int, done: int, total: int) -> None:
        if self.runner._stopping.is_set():
            raise _Stopping()
        with self.runner._lock:
            f = self.job.files[index]
            f.chunks_embedded, f.chunks_total = done, total

    def finished(self, index: int, result: FileResult) -> None:
        with self.runner._lock:
            f = self.job.files[index]
            f.state, f.reason, f.chunks = result.status, result.reason, result.chunks
            f.chunks_total = f.chunks_total or 0
