"""The corpus: list, read, upload, delete."""

from __future__ import annotations

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import JobsDep, ServiceDep, SettingsDep
from api.jobs import JobResponse
from api.schemas import Deleted, DocumentInfo, DocumentList, DocumentWithText, UploadResponse, UploadResult
from index.docstore import StoredDocument
from index.loaders import READERS, UnreadableFileError, decode_bytes
from rag.errors import InvalidInputError, RagError
from index.service import upload_name

router = APIRouter(prefix="/v1/documents", tags=["documents"])


class TooLargeError(RagError):
    code = "too_large"


class UnsupportedMediaError(RagError):
    code = "unsupported_media_type"


def _info(d: StoredDocument) -> dict:
    return dict(doc_id=d.doc_id, title=d.title, date=d.date, url=d.url, chunks=d.chunks, size=d.size,
                hash=d.content_hash)


@router.get("", response_model=DocumentList, summary="Every indexed document")
def list_documents(svc: ServiceDep) -> DocumentList:
    return DocumentList(documents=[DocumentInfo(**_info(d)) for d in svc.documents()])


@router.get("/{doc_id:path}", response_model=DocumentWithText, summary="One document with its stored text")
def get_document(doc_id: str, svc: ServiceDep) -> DocumentWithText:
    d = svc.document(doc_id)
    return DocumentWithText(**_info(d), text=d.text or "")


@router.delete("/{doc_id:path}", response_model=Deleted, summary="Remove a document from the index")
def delete_document(doc_id: str, svc: ServiceDep) -> Deleted:
    svc.delete_document(doc_id)
    return Deleted(deleted=doc_id)


@router.post("", response_model=UploadResponse, summary="Upload files (multipart field `files`)",
             responses={202: {"model": JobResponse, "description": "An upload larger than `RAG_API_JOB_THRESHOLD_BYTES`"
                              " in all: queued as a job (`Location: /v1/jobs/{id}`)."}},
             description="Small uploads are ingested before the response (200, each file's outcome); bigger ones "
                         "answer 202 at once with a job to follow at `GET /v1/jobs/{id}`; 429 with `Retry-After` "
                         "when the job queue is full.")
async def upload(svc: ServiceDep, jobs: JobsDep, settings: SettingsDep,
                 files: list[UploadFile] = File(...)) -> UploadResponse | JSONResponse:
    limits = settings.api
    if len(files) > limits.max_upload_files:
        raise InvalidInputError(f"{len(files)} files sent; at most {limits.max_upload_files} per upload",
                                limit=limits.max_upload_files)
    received: list[tuple[str, bytes]] = []
    for f in files:  # every file is checked before any is ingested
        content = await f.read(limits.max_upload_bytes + 1)
        received.append((f.filename or "", content))
        upload_name(f.filename or "")
        _check(f.filename or "", content, limits.max_upload_bytes)
    if sum(len(content) for _, content in received) > limits.job_threshold_bytes:
        job = await run_in_threadpool(jobs.submit, received)
        return JSONResponse(JobResponse(job=job).model_dump(mode="json"), status_code=202,
                            headers={"Location": f"/v1/jobs/{job.id}"})
    results = await run_in_threadpool(svc.add_files, received)
    return UploadResponse(results=[UploadResult(**r.__dict__) for r in results])


def _check(name: str, content: bytes, max_bytes: int) -> None:
    suffix = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    if suffix not in READERS:
        raise UnsupportedMediaError(f"{name or '(unnamed)'}: unsupported file type; send one of "
                                    f"{', '.join(sorted(READERS))}", filename=name)
    if len(content) > max_bytes:
        raise TooLargeError(f"{name}: larger than the {max_bytes}-byte limit", filename=name, limit=max_bytes)
    if not content.strip():
        raise InvalidInputError(f"{name}: the file is empty", filename=name)
    if suffix != ".pdf":
        try:
            decode_bytes(content, name)
        except UnreadableFileError as exc:
            raise UnsupportedMediaError(exc.message, filename=name) from exc
    elif not content.startswith(b"%PDF"):
        raise UnsupportedMediaError(f"{name}: not a PDF file", filename=name)
