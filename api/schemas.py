"""HTTP request and response bodies that are not core types (``rag.types``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rag.settings import MAX_TOP_K, AnswerMode
from rag.types import Citation, Hit


class ErrorDetails(BaseModel):
    """What the error is about (the field, the file, the limit…), and always `request_id`, as in `X-Request-ID`."""

    model_config = ConfigDict(extra="allow")

    request_id: str


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(..., min_length=1, description="Stable machine-readable code, e.g. `invalid_input`.")
    message: str = Field(..., min_length=1, description="What went wrong, for a person.")
    details: ErrorDetails


class ErrorEnvelope(BaseModel):
    """The one shape of every error response."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "empty"] = Field(..., description="`empty` until something is ingested.")
    documents: int
    chunks: int
    stores: dict[str, str] = Field(..., description="Where the vectors and the documents live (both were reached).",
                                   examples=[{"vectors": "chroma embedded (rag_chunks)", "documents": "sqlite embedded"}])


EXAMPLE_QUESTION = "Who met Xu Qiliang in Beijing in 2018?"


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"question": EXAMPLE_QUESTION}, {"question": EXAMPLE_QUESTION, "top_k": 6, "mode": "extractive"}]})

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


class ContentPart(BaseModel):
    """One part of a message's content in OpenAI's format: `text` parts are read, others (images…) ignored."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


def _unicode_text(value: str) -> str:
    """JSON's \\u escapes can spell a lone surrogate, which no UTF-8 response can carry back."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions request; sampling fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "rag-cited", "messages": [{"role": "user", "content": EXAMPLE_QUESTION}]},
        {"messages": [{"role": "user", "content": EXAMPLE_QUESTION}], "stream": True}]})

    model: Annotated[str, AfterValidator(_unicode_text)] = Field("rag-cited", description="Echoed in the reply.")
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
