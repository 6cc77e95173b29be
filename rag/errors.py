"""Domain errors, each with a stable ``code``; the edges map them to HTTP/CLI.

    RagError
    ├── InvalidInputError        bad question, bad parameter, bad file
    ├── NotFoundError            unknown document
    ├── IndexEmptyError          nothing ingested yet
    ├── IndexMismatchError       store built with another embedding model
    ├── StoreUnavailableError    Chroma server unreachable
    └── UpstreamError            embedding or chat model failed
        ├── UpstreamTimeoutError
        └── LocalModelError      the local model is not installed or its server did not start
"""

from __future__ import annotations

from typing import Any


class RagError(Exception):
    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInputError(RagError):
    code = "invalid_input"


class NotFoundError(RagError):
    code = "not_found"


class IndexEmptyError(RagError):
    code = "index_empty"


class IndexMismatchError(RagError):
    code = "index_mismatch"


class StoreUnavailableError(RagError):
    code = "store_unavailable"


class UpstreamError(RagError):
    code = "upstream_error"


class UpstreamTimeoutError(UpstreamError):
    code = "upstream_timeout"


class LocalModelError(UpstreamError):
    code = "local_model_unavailable"
