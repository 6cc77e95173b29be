"""Optional bearer-key protection for the /v1 routes."""

from __future__ import annotations

import secrets

from fastapi import Request

from rag.errors import RagError


class UnauthorizedError(RagError):
    code = "unauthorized"


def require_api_key(request: Request) -> None:
    """Pass when no key is configured, or the request carries ``Authorization: Bearer <key>``."""
    key = request.app.state.settings.api.key
    if key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), key.get_secret_value().encode()):
        raise UnauthorizedError("missing or wrong API key: send 'Authorization: Bearer <key>'")
