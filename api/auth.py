"""Optional bearer-key protection for the /v1 routes, checked before anything reads the request body.

A middleware, not a route dependency: FastAPI parses a multipart body before
it runs a route's dependencies, so an unauthenticated 60 MB upload would be
received and spooled before being refused. Here the headers alone decide;
the body is never read. Keys are compared in constant time.
"""

from __future__ import annotations

import secrets

from pydantic import SecretStr
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_body
from api.tracing import HttpMiddleware

PROTECTED_PREFIX = "/v1"
MESSAGE = "missing or wrong API key: send 'Authorization: Bearer <key>'"


def authorized(header: str, key: SecretStr) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(),
                                                                 key.get_secret_value().encode())


class ApiKeyMiddleware(HttpMiddleware):
    """401 with the error envelope for a /v1 request without the key, before its body is read."""

    def __init__(self, app: ASGIApp, key: SecretStr | None) -> None:
        super().__init__(app)
        self.key = key

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.key is not None and _protected(scope["path"]):
            headers = dict(scope.get("headers") or [])
            if not authorized(headers.get(b"authorization", b"").decode("latin-1"), self.key):
                response = JSONResponse(error_body("unauthorized", MESSAGE), status_code=401,
                                        headers={"WWW-Authenticate": "Bearer", "Connection": "close"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")
