"""What each domain error becomes at the edges, in one table: an HTTP status for the API, an exit code for
the CLI. The first row whose class matches wins (subclasses before their parents)."""

from __future__ import annotations

from typing import NamedTuple

from rag.errors import (IndexEmptyError, IndexMismatchError, InvalidInputError, LocalModelError, NotFoundError,
                        RagError, StoreUnavailableError, UpstreamError, UpstreamTimeoutError)


class Outcome(NamedTuple):
    kind: type[RagError]
    http_status: int
    exit_code: int


OUTCOMES: list[Outcome] = [
    Outcome(InvalidInputError, 400, 2),
    Outcome(NotFoundError, 404, 1),
    Outcome(IndexEmptyError, 409, 3),
    Outcome(IndexMismatchError, 409, 3),
    Outcome(StoreUnavailableError, 503, 4),
    Outcome(UpstreamTimeoutError, 504, 5),
    Outcome(LocalModelError, 503, 5),
    Outcome(UpstreamError, 502, 5),
]
UNEXPECTED = Outcome(RagError, 500, 1)


def outcome_for(exc: RagError) -> Outcome:
    return next((o for o in OUTCOMES if isinstance(exc, o.kind)), UNEXPECTED)
