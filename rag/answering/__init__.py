"""Answer drafting: each answerer turns a question and numbered passages into
``[n]``-marked text. Verification (``rag.citations``) runs after every one."""

from __future__ import annotations

from typing import Protocol

from rag.types import Hit


class Answerer(Protocol):
    mode: str

    def draft(self, question: str, hits: list[Hit], query_embedding: list[float]) -> str:
        """Answer text with ``[n]`` markers (n = 1-based index into ``hits``); "" to refuse."""
        ...
