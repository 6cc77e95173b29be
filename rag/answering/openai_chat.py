"""Answers written by any OpenAI-compatible chat model (OpenAI, vLLM, Ollama,
llama.cpp server, LM Studio) through the official ``openai`` client.

The model reads numbered evidence (by default the best sentences with their
neighbours, see :mod:`rag.answering.evidence`) and replies either as JSON
sentences with passage numbers under a schema (:mod:`rag.answering.structured`)
or as text with ``[n]`` markers. ``output="auto"`` asks for JSON and, if the
server rejects the schema, asks again in text and keeps to text from then on.
The fixed instructions come first in every request so that a server with
prompt caching reads them once.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Generator, Iterator

from rag.answerability import Assessment
from rag.answering import Draft
from rag.answering.evidence import sentence_evidence
from rag.answering.structured import MarkerRenumberer, StreamRenderer, reply_sentences, response_format
from rag.errors import UpstreamError, UpstreamTimeoutError
from rag.retrieval import Retrieval
from rag.settings import LLMSettings
from rag.types import Hit

log = logging.getLogger(__name__)

_RULES = """Use only facts stated in the passages. Write one to three short sentences that answer the question directly.
A passage on the same subject is not enough: if no passage states what was asked, the question is not answerable."""

JSON_PROMPT = f"""You answer questions using only the numbered passages you are given.
Reply in JSON: {{"answerable": true or false, "sentences": [{{"text": "...", "sources": [n]}}]}}. Each sentence lists the numbers of the passages that state it.
{_RULES} Then reply {{"answerable": false, "sentences": []}}."""

TEXT_PROMPT = f"""You answer questions using only the numbered passages you are given.
After every sentence put the number of each passage that supports it in square brackets, like [1] or [2][3].
{_RULES} Then reply only "The sources do not answer this question." and cite nothing."""


def format_passages(hits: list[Hit]) -> str:
    return "\n\n".join(f"[{i}] ({hit.title}) {hit.text}" for i, hit in enumerate(hits, 1))


def build_messages(question: str, hits: list[Hit], structured: bool = False) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": JSON_PROMPT if structured else TEXT_PROMPT},
        {"role": "user", "content": f"Passages:\n\n{format_passages(hits)}\n\nQuestion: {question}"},
    ]


def passage_numbers(evidence: list[Hit], passages: list[Hit]) -> dict[int, int]:
    """Evidence number → number of the retrieved passage it was cut from (both 1-based)."""
    index = {hit.chunk_id: n for n, hit in enumerate(passages, 1)}
    return {n: index.get(hit.chunk_id, n) for n, hit in enumerate(evidence, 1)}


class OpenAIChatAnswerer:
    mode = "openai"

    def __init__(self, settings: LLMSettings, client: Any | None = None) -> None:
        self.settings = settings
        self._client = client
        self.structured = settings.output != "text"  # auto turns this off when the server rejects the schema

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.connect()
        return self._client

    @property
    def model(self) -> str:
        return self.settings.model

    def connect(self) -> Any:
        from openai import OpenAI

        key = self.settings.api_key.get_secret_value() if self.settings.api_key else "not-needed"
        return OpenAI(base_url=self.settings.base_url, api_key=key, timeout=self.settings.timeout,
                      max_retries=self.settings.max_retries)

    def evidence(self, retrieval: Retrieval, assessment: Assessment | None) -> list[Hit]:
        """What the model reads, numbered 1..n: the best sentences in context, or the whole passages."""
        if self.settings.evidence == "sentences" and assessment is not None and assessment.candidates:
            return sentence_evidence(assessment, self.settings.evidence_sentences)
        return list(retrieval.hits)

    def draft(self, question: str, retrieval: Retrieval, assessment: Assessment | None = None) -> Draft:
        if not retrieval.hits:
            return Draft([], retrieval.hits)
        hits = self.evidence(retrieval, assessment)
        response = self._create(question, hits, stream=False)
        if not response.choices:
            raise UpstreamError("chat model returned no choices", model=self.model)
        return Draft(reply_sentences(response.choices[0].message.content or ""), hits)

    def draft_stream(self, question: str, retrieval: Retrieval,
                     assessment: Assessment | None = None) -> Generator[str, None, Draft]:
        """The model's answer as it is generated (readable text even when it writes JSON); returns the draft."""
        if not retrieval.hits:
            return Draft([], retrieval.hits)
        hits = self.evidence(retrieval, assessment)
        numbers = passage_numbers(hits, retrieval.hits)  # live text names passages as the sources event does
        pieces: list[str] = []
        with upstream_errors(self.model, self.settings.timeout):
            stream = self._create(question, hits, stream=True)  # may switch to text (a rejected schema)
            renderer = StreamRenderer(numbers) if self.structured else MarkerRenumberer(numbers)
            received = False
            for chunk in stream:
                if not chunk.choices:
                    continue
                received = True
                piece = chunk.choices[0].delta.content
                if piece:
                    pieces.append(piece)
                    shown = renderer.feed(piece)
                    if shown:
                        yield shown
            if not received:
                raise UpstreamError("chat model returned no choices", model=self.model)
        if rest := renderer.flush():
            yield rest
        return Draft(reply_sentences("".join(pieces)), hits)

    def _create(self, question: str, hits: list[Hit], stream: bool) -> Any:
        """One chat completion; in ``auto`` output, a schema the server rejects means text from now on."""
        try:
            return self._request(question, hits, stream)
        except UpstreamError as exc:
            if not (self.structured and self.settings.output == "auto" and _rejects_schema(exc)):
                raise
            log.warning("chat model rejected the JSON schema (%s); asking for [n]-marked text from now on",
                        exc.message)
            self.structured = False
            return self._request(question, hits, stream)

    def _request(self, question: str, hits: list[Hit], stream: bool) -> Any:
        """One request, the client's failures (connecting included) as domain errors."""
        with upstream_errors(self.model, self.settings.timeout):
            extra = {"response_format": response_format(len(hits))} if self.structured else {}
            return self.client.chat.completions.create(
                model=self.model, messages=build_messages(question, hits, self.structured),
                temperature=self.settings.temperature, max_tokens=self.settings.max_tokens, stream=stream, **extra)


def _rejects_schema(exc: UpstreamError) -> bool:
    """A server that does not take ``response_format`` answers 400/422, or (some llama.cpp forks) 500 naming it."""
    status = exc.details.get("status")
    return status in {400, 422} or (status is not None and any(
        word in exc.message for word in ("response_format", "json_schema")))


@contextmanager
def upstream_errors(model: str, timeout: float) -> Iterator[None]:
    """The ``openai`` client's failures as domain errors (a connection lost mid-stream surfaces from httpx)."""
    import httpx
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
    except httpx.HTTPError as exc:
        raise UpstreamError(f"chat model connection lost: {exc!r}", model=model) from exc
