"""Answer drafting: each answerer turns a question and its retrieved passages
into sentences, each with the numbers of the passages it claims as sources.
Verification (``rag.citations``) runs after every one on that structure; only
a chat model's free text is parsed for its ``[n]`` markers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Protocol, runtime_checkable

from rag.answerability import Assessment
from rag.citations import CitedSentence, parse_cited_sentences, rendered_pieces
from rag.retrieval import Retrieval
from rag.types import Hit


@dataclass
class Draft:
    sentences: list[CitedSentence]  # none means: nothing in the sources answers this
    hits: list[Hit]  # the passages the sentences' numbers point at (1-based)

    @classmethod
    def of_text(cls, text: str, hits: list[Hit]) -> "Draft":
        """A draft written as ``[n]``-marked text."""
        return cls(parse_cited_sentences(text), hits)

    def pieces(self) -> list[str]:
        """The draft as ``[n]``-marked text, sentence by sentence (for streaming)."""
        return rendered_pieces([(s.text, s.markers) for s in self.sentences])

    @property
    def text(self) -> str:
        return "".join(self.pieces())


class Answerer(Protocol):
    mode: str

    def draft(self, question: str, retrieval: Retrieval, assessment: Assessment | None = None) -> Draft: ...


@runtime_checkable
class StreamingAnswerer(Answerer, Protocol):
    """An answerer that can show its draft as it is written (a chat model's tokens)."""

    def draft_stream(self, question: str, retrieval: Retrieval,
                     assessment: Assessment | None = None) -> Generator[str, None, Draft]: ...
