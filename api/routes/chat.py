"""POST /v1/chat/completions: the OpenAI chat protocol over the same verified answers.

The last user message is the question (a follow-up is made standalone with
the previous user turn, see ``rag.conversation``). The reply's content
carries ``[n]`` markers; ``citations`` (on the message and at the top level)
says what they point to, and ``confidence`` beside it is the calibrated
probability (0..1, or null) that the sources answer the question; ``fallback``
says what did not go as asked (a chat-model mode that answered extractively, a reading check that could
not run; null when all did).

Streaming sends the *verified* answer as ``content``, so that the concatenated
deltas are exactly the final content; the last chunk carries the citations,
the confidence and the fallback. In a chat-model mode the model's draft
streams live before it as ``reasoning_content`` deltas (the field that
OpenAI-compatible servers use for text shown apart from the answer; clients
that do not know it ignore it). A failure before anything was streamed is an
HTTP error; after, an ``error`` frame ends the stream.
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import MetricsDep, ServiceDep
from api.errors import error_body, internal_error_body
from api.schemas import ChatChoice, ChatCompletion, ChatCompletionRequest, ChatResponseMessage, Usage
from api.sse import sse, stream_response
from rag.conversation import standalone_question
from rag.errors import InvalidInputError, RagError
from rag.citations import rendered_pieces
from rag.pipeline import AnswerEvent, DeltaEvent, Event
from rag.types import Answer

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


def _question(body: ChatCompletionRequest) -> str:
    users = [m.text() for m in body.messages if m.role == "user"]
    if not users or body.messages[-1].role != "user":
        raise InvalidInputError("the last message must come from the user", field="messages")
    return standalone_question(users)


def _usage(body: ChatCompletionRequest, answer: Answer) -> Usage:
    prompt = sum(len(m.text().split()) for m in body.messages)
    completion = len(answer.answer.split())
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


@router.post("/chat/completions", response_model=ChatCompletion,
             summary="OpenAI-compatible chat completions (stream or not)",
             responses=stream_response("The completion; with `stream: true`, Server-Sent Events: "
                                       "`chat.completion.chunk` objects, then `[DONE]`"))
def chat_completions(body: ChatCompletionRequest, svc: ServiceDep, metrics: MetricsDep):
    question = _question(body)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if body.stream:
        events = svc.ask_stream(question, top_k=body.top_k, mode=body.mode)  # bad input raises here
        started = _until_first_output(events)  # a model that fails at once is still an HTTP error
        drafts_live = (body.mode or svc.settings.answer.mode) != "extractive"  # a model's draft, not the answer
        chunks = _chunks(completion_id, created, body.model, itertools.chain(started, events), metrics, drafts_live)
        return StreamingResponse(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    answer = svc.ask(question, top_k=body.top_k, mode=body.mode)
    metrics.observe_answer(answer.timings_ms)
    return ChatCompletion(
        id=completion_id, created=created, model=body.model,
        choices=[ChatChoice(message=ChatResponseMessage(content=answer.answer, citations=answer.citations,
                                                        confidence=answer.confidence))],
        usage=_usage(body, answer), citations=answer.citations, confidence=answer.confidence,
        fallback=answer.fallback)


def _until_first_output(events: Iterator[Event]) -> list[Event]:
    """The events up to the first draft text or the answer (what can fail before a response has started)."""
    head: list[Event] = []
    for event in events:
        head.append(event)
        if isinstance(event, (DeltaEvent, AnswerEvent)):
            break
    return head


def _chunks(completion_id: str, created: int, model: str, events: Iterator[Event], metrics: MetricsDep,
            drafts_live: bool) -> Iterator[str]:
    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return sse(None, body)

    yield chunk({"role": "assistant", "content": ""})
    answer = None
    try:
        for event in events:
            if isinstance(event, DeltaEvent) and drafts_live:
                yield chunk({"reasoning_content": event.text})
            elif isinstance(event, AnswerEvent):
                answer = event.answer
    except RagError as exc:
        yield sse(None, error_body(exc.code, exc.message, exc.details))
        return
    except Exception as exc:  # the stream has started: report, never drop the connection silently
        yield sse(None, internal_error_body(exc))
        return
    assert answer is not None  # the pipeline's last event
    metrics.observe_answer(answer.timings_ms)
    pieces = rendered_pieces([(s.text, s.citations) for s in answer.sentences]) if answer.answerable else [answer.answer]
    for piece in pieces:
        yield chunk({"content": piece})
    citations = [c.model_dump() for c in answer.citations]
    yield chunk({}, "stop", citations=citations, confidence=answer.confidence, fallback=answer.fallback)
    yield sse(None, "[DONE]")
