"""HTTP request and response bodies that are not core types (``rag.types``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.settings import MAX_TOP_K, AnswerMode
from rag.types import Citation, Hit


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., description="The question, in plain words.")
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K, description="Passages to retrieve (default from settings).")
    mode: AnswerMode | None = Field(None, description="Answer mode (default from settings).")


class SourcePassage(Hit):
    """A retrieved passage as the `sources` stream event shows it; ``n`` numbers the draft's markers."""

    n: int


class DocumentInfo(BaseModel):
    doc_id: str
    title: str
    date: str | None
    url: str | None
    chunks: int
    size: int
    hash: str


class DocumentList(BaseModel):
    documents: list[DocumentInfo]


class DocumentWithText(DocumentInfo):
    text: str


class UploadResult(BaseModel):
    filename: str
    doc_id: str
    status: Literal["added", "updated", "unchanged", "skipped"]
    reason: str | None = None
    chunks: int | None = None


class UploadResponse(BaseModel):
    results: list[UploadResult]


class Deleted(BaseModel):
    deleted: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions request; sampling fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = "rag-cited"
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K)
    mode: AnswerMode | None = None


class ChatResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    citations: list[Citation]
    confidence: float | None = Field(
        None, description="Calibrated probability (0..1) that the sources answer the question; null if not assessed.")


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatResponseMessage
    finish_reason: str = "stop"


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    citations: list[Citation]
    confidence: float | None = Field(
        None, description="Calibrated probability (0..1) that the sources answer the question; null if not assessed.")
    fallback: str | None = Field(
        None, description="Why the asked answer mode did not write this answer (its chat model failed, so it is "
        "extractive); null when it did.")
