"""Domain errors → HTTP status and the one JSON error envelope
``{"error": {"code", "message", "details"}}``. Every error body is built here."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from api.outcomes import outcome_for
from api.schemas import ErrorEnvelope
from api.tracing import HttpMiddleware, current_request_id
from rag.errors import RagError

log = logging.getLogger("rag.api")


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The envelope; inside a request, ``details.request_id`` names it (see ``api.tracing``)."""
    details = dict(details or {})
    if (request_id := current_request_id.get()) is not None:
        details.setdefault("request_id", request_id)
    return {"error": {"code": code, "message": message, "details": details}}


def internal_error_body(exc: BaseException) -> dict[str, Any]:
    """A generic 500 envelope (never the exception's text); the traceback goes to the log with the request id."""
    log.error("unexpected %s while serving the request", type(exc).__name__, exc_info=exc)
    return error_body("internal_error", f"internal error; quote request id {current_request_id.get() or '-'} "
                                        "when reporting it")


def status_for(exc: RagError, extra: dict[type[RagError], int] | None = None) -> int:
    """The HTTP status of a domain error (``extra``: edge-only errors, checked first)."""
    return next((status for kind, status in (extra or {}).items() if isinstance(exc, kind)),
                outcome_for(exc).http_status)


#: What each error status means, as the OpenAPI schema documents it (the body is always the envelope).
ERROR_STATUSES: dict[int, str] = {
    400: "Bad input: an empty or over-long question, an unusable file name, an empty file, too many files",
    401: "Missing or wrong API key (only when `RAG_API_KEY` is set)",
    404: "No such document or job",
    409: "The index is empty, or was built with another embedding model",
    413: "A file is larger than `RAG_API_MAX_UPLOAD_BYTES`",
    415: "An unsupported or binary file",
    422: "A malformed request: wrong JSON, a missing or mistyped field, `top_k` out of range",
    429: "The upload job queue is full (`RAG_API_JOB_QUEUE`); `Retry-After` says when to try again",
    502: "The chat or embedding server failed",
    503: "The Chroma store is unreachable, or the local model is unavailable",
    504: "The chat or embedding server timed out",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting ``statuses`` with the envelope (for ``include_router``). 422 needs no
    listing: FastAPI documents it wherever a route validates input, and ``install_error_handlers`` gives it
    the envelope."""
    return {status: {"model": ErrorEnvelope, "description": ERROR_STATUSES[status]} for status in statuses}


def _document_validation_errors(app: FastAPI) -> None:
    """FastAPI documents each 422 with its own ``HTTPValidationError`` body, which this app never sends (the
    handler below answers the envelope): the schema says the envelope instead, for every route."""
    ref = "#/components/schemas/{model}"

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)  # builds and caches app.openapi_schema
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            envelope = ErrorEnvelope.model_json_schema(ref_template=ref)
            for name, definition in {**envelope.pop("$defs", {}), "ErrorEnvelope": envelope}.items():
                components.setdefault(name, definition)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    if "422" in operation.get("responses", {}):
                        operation["responses"]["422"] = {
                            "description": ERROR_STATUSES[422],
                            "content": {"application/json": {"schema": {"$ref": ref.format(model="ErrorEnvelope")}}}}
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI, extra: dict[type[RagError], int] | None = None) -> None:
    """The envelope for domain errors (``extra`` maps edge-only errors), validation errors and HTTP errors."""
    _document_validation_errors(app)

    @app.exception_handler(RagError)
    async def _rag_error(_: Request, exc: RagError) -> JSONResponse:
        retry_after = exc.details.get("retry_after")
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=status_for(exc, extra),
                            headers=None if retry_after is None else {"Retry-After": str(retry_after)})

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", "")} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        message = f"{'.'.join(str(p) for p in first['loc'][1:]) or 'body'}: {first['msg']}"
        return JSONResponse(error_body("validation_error", message, {"errors": errors}), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)


class UnexpectedErrorMiddleware(HttpMiddleware):
    """An exception no handler took becomes the generic 500 envelope here, inside the request-id middleware
    (Starlette's own last-resort handler runs outside every middleware, where the request has no id)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 — the last resort: log it, answer generically
            if started:  # too late for a status: the log has it, the connection ends
                log.error("unexpected %s after the response started", type(exc).__name__, exc_info=exc)
                return
            await JSONResponse(internal_error_body(exc), status_code=500)(scope, receive, send)
