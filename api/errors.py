"""Domain errors → HTTP status and the one JSON error envelope
``{"error": {"code", "message", "details"}}``. Every error body is built here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.outcomes import outcome_for
from rag.errors import RagError



def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def status_for(exc: RagError, extra: dict[type[RagError], int] | None = None) -> int:
    """The HTTP status of a domain error (``extra``: edge-only errors, checked first)."""
    return next((status for kind, status in (extra or {}).items() if isinstance(exc, kind)),
                outcome_for(exc).http_status)


def install_error_handlers(app: FastAPI, extra: dict[type[RagError], int] | None = None) -> None:
    """The envelope for domain errors (``extra`` maps edge-only errors), validation errors and HTTP errors."""

    @app.exception_handler(RagError)
    async def _rag_error(_: Request, exc: RagError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=status_for(exc, extra))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body("internal_error", f"{type(exc).__name__}: {exc}"), status_code=500)

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
