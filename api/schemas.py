"""Request bodies of the HTTP API (responses reuse ``rag.types``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., description="The question, in plain words.")
    top_k: int | None = Field(None, ge=1, le=50, description="Passages to retrieve (default from settings).")
    mode: Literal["extractive", "openai"] | None = Field(None, description="Answer mode (default from settings).")
