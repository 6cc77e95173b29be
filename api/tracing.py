"""Request ids and log lines an operator can trace.

Every HTTP request gets an id: the client's ``X-Request-ID`` when it is a
sane token, a new one otherwise. It is echoed in the response header, put in
every error envelope (``details.request_id``) and on every log line written
while the request is served. ``RAG_LOG_FORMAT=json`` writes one JSON object
per log line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
access_log = logging.getLogger("rag.access")
_SANE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def request_id_from(given: str | None) -> str:
    """The client's id when it is a short token of safe characters (it ends up in logs), else a new one."""
    return given if given and _SANE.match(given) else uuid.uuid4().hex


class HttpMiddleware:
    """A pure ASGI middleware that acts on HTTP requests (``handle``) and passes anything else through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestIdMiddleware(HttpMiddleware):
    """Outermost: names the request before anything else runs, and names the response after."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = dict(scope.get("headers") or []).get(HEADER.encode())
        request_id = request_id_from(given.decode("latin-1") if given else None)
        token = current_request_id.set(request_id)
        started, status = time.perf_counter(), 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER.encode()]
                message = {**message, "headers": [*headers, (HEADER.encode(), request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:  # the access line, with the id (uvicorn's own access log is off: it cannot carry it)
            access_log.info("%s %s %d %.1f ms", scope.get("method"), scope.get("path"), status,
                            (time.perf_counter() - started) * 1000, extra={"request_id": request_id})
            current_request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Puts ``request_id`` ("-" outside a request) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                 "level": record.levelname, "logger": record.name, "message": record.getMessage(),
                 "request_id": getattr(record, "request_id", None) or current_request_id.get()}
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: int, log_format: str) -> None:
    """The root logger for a server process: text with the request id, or JSON lines."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter("%(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
