"""Answers written by any OpenAI-compatible chat model (OpenAI, vLLM, Ollama,
llama.cpp server, LM Studio) through the official ``openai`` client."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from rag.answerability import Assessment
from rag.answering import Draft
from rag.errors import UpstreamError, UpstreamTimeoutError
from rag.retrieval import Retrieval
from rag.settings import LLMSettings
from rag.types import Hit

SYSTEM_PROMPT = """You answer questions using only the numbered passages you are given.
Write a short answer of one to four sentences. After every sentence put the number of each passage that supports it in square brackets, like [1] or [2][3].
Use only facts stated in the passages. Passages on the same subject are not enough: if no passage states what was asked, reply only "The sources do not answer this question." and cite nothing."""


def format_passages(hits: list[Hit]) -> str:
    return "\n\n".join(f"[{i}] ({hit.title}) {hit.text}" for i, hit in enumerate(hits, 1))


def build_messages(question: str, hits: list[Hit]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Passages:\n\n{format_passages(hits)}\n\nQuestion: {question}"},
    ]


class OpenAIChatAnswerer:
    mode = "openai"

    def __init__(self, settings: LLMSettings, client: Any | None = None) -> None:
        self.settings = settings
        if client is None:
            from openai import OpenAI

            key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
            client = OpenAI(base_url=settings.base_url, api_key=key, timeout=settings.timeout,
                            max_retries=settings.max_retries)
        self.client = client

    def draft(self, question: str, retrieval: Retrieval, assessment: Assessment | None = None) -> Draft:
        if not retrieval.hits:
            return Draft("", retrieval.hits)
        with _upstream_errors(self.settings.model, self.settings.timeout):
            response = self.client.chat.completions.create(
                model=self.settings.model, messages=build_messages(question, retrieval.hits),
                temperature=self.settings.temperature, max_tokens=self.settings.max_tokens)
        if not response.choices:
            raise UpstreamError("chat model returned no choices", model=self.settings.model)
        return Draft(response.choices[0].message.content or "", retrieval.hits)

    def draft_stream(self, question: str, retrieval: Retrieval,
                     assessment: Assessment | None = None) -> Iterator[str]:
        """The model's answer as it is generated (no passages: nothing is asked)."""
        if not retrieval.hits:
            return
        with _upstream_errors(self.settings.model, self.settings.timeout):
            stream = self.client.chat.completions.create(
                model=self.settings.model, messages=build_messages(question, retrieval.hits),
                temperature=self.settings.temperature, max_tokens=self.settings.max_tokens, stream=True)
            received = False
            for chunk in stream:
                if not chunk.choices:
                    continue
                received = True
                piece = chunk.choices[0].delta.content
                if piece:
                    yield piece
            if not received:
                raise UpstreamError("chat model returned no choices", model=self.settings.model)


@contextmanager
def _upstream_errors(model: str, timeout: float) -> Iterator[None]:
    """The ``openai`` client's failures as domain errors."""
    import openai

    try:
        yield
    except openai.APITimeoutError as exc:
        raise UpstreamTimeoutError(f"chat model timed out after {timeout:g} s", model=model) from exc
    except openai.APIStatusError as exc:
        raise UpstreamError(f"chat model answered HTTP {exc.status_code}: {exc.message}",
                            model=model, status=exc.status_code) from exc
    except openai.OpenAIError as exc:
        raise UpstreamError(f"chat model unreachable: {exc}", model=model) from exc
