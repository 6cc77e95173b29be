"""Data that crosses module boundaries. Offsets are character offsets into a
document's stored (cleaned) text, so ``text[start:end]`` is always exact."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Chunk(BaseModel):
    """A span of a document's stored text, as chunking cuts it."""

    chunk_id: str
    doc_id: str
    start: int
    end: int
    text: str


class Passage(Chunk):
    """A stored chunk with its document's title: the one record of a passage (``Hit`` adds retrieval scores)."""

    title: str
    date: str | None = None  # the document's date (ISO 8601), when its source states one

    def as_hit(self, score: float = 0.0, dense_rank: int | None = None, keyword_rank: int | None = None) -> Hit:
        return Hit(chunk_id=self.chunk_id, doc_id=self.doc_id, title=self.title, date=self.date, start=self.start,
                   end=self.end, text=self.text, score=score, dense_rank=dense_rank, keyword_rank=keyword_rank)


class Hit(Passage):
    """A retrieved passage (one chunk) with its fused score and ranks."""

    score: float
    dense_rank: int | None = None
    keyword_rank: int | None = None


class Citation(BaseModel):
    n: int
    doc_id: str
    title: str
    chunk_id: str
    start: int
    end: int
    quote: str
    score: float


class AnswerSentence(BaseModel):
    text: str
    citations: list[int] = Field(default_factory=list)


class Timings(BaseModel):
    retrieve: float = 0.0
    generate: float = 0.0
    verify: float = 0.0
    total: float = 0.0


class Answer(BaseModel):
    question: str
    answer: str
    answerable: bool
    sentences: list[AnswerSentence]
    citations: list[Citation]
    dropped_citations: int = 0
    mode: str
    timings_ms: Timings
    #: Calibrated probability (0..1) that the sources answer the question (see ``rag.answerability``);
    #: None where no assessment was made.
    confidence: float | None = None
    #: What did not go as asked, and why: "answered extractively: …" when the asked chat-model mode failed or
    #: timed out (``mode`` is then ``extractive``), "unchecked: …" when the reading check could not run (both,
    #: joined by "; ", when both happened); None when all went as asked.
    fallback: str | None = None


REFUSAL = "The sources do not answer this question."
