"""Answer drafting: each answerer turns a question and its retrieved passages
into ``[n]``-marked text. Verification (``rag.citations``) runs after every one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Protocol, runtime_checkable

from rag.answerability import Assessment
from rag.retrieval import Retrieval
from rag.types import Hit


@dataclass
class Draft:
    text: str  # "" means: nothing in the sources answers this
    hits: list[Hit]  # the passages the [n] markers number (1-based)


class Answerer(Protocol):
    mode: str

    def draft(self, question: str, retrieval: Retrieval, assessment: Assessment | None = None) -> Draft: ...


@runtime_checkable
class StreamingAnswerer(Answerer, Protocol):
    """An answerer that can show its draft as it is written (a chat model's tokens)."""

    def draft_stream(self, question: str, retrieval: Retrieval,
                     assessment: Assessment | None = None) -> Generator[str, None, Draft]: ...
