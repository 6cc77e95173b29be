"""POST /v1/ask and its streaming twin POST /v1/ask/stream (Server-Sent Events)."""

from __future__ import annotations

from typing import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import MetricsDep, ServiceDep
from api.errors import error_body, internal_error_body
from api.schemas import AskRequest, SourcePassage
from api.sse import sse, stream_response
from rag.errors import RagError
from rag.pipeline import AnswerEvent, DeltaEvent, Event, SourcesEvent
from rag.types import Answer

router = APIRouter(prefix="/v1", tags=["ask"])


@router.post("/ask", response_model=Answer, summary="Answer a question with verified citations")
def ask(body: AskRequest, svc: ServiceDep, metrics: MetricsDep) -> Answer:
    answer = svc.ask(body.question, top_k=body.top_k, mode=body.mode)
    metrics.observe_answer(answer.timings_ms)
    return answer


@router.post("/ask/stream", summary="The same answer as Server-Sent Events",
             response_class=StreamingResponse,
             responses=stream_response("events: sources, delta…, answer, done (or error)",
                                       events=("sources", "delta", "answer", "done", "error")))
def ask_stream(body: AskRequest, svc: ServiceDep, metrics: MetricsDep) -> StreamingResponse:
    events = svc.ask_stream(body.question, top_k=body.top_k, mode=body.mode)  # bad input raises here
    return StreamingResponse(_frames(events, metrics), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _frames(events: Iterator[Event], metrics: MetricsDep) -> Iterator[str]:
    try:
        for event in events:
            if isinstance(event, SourcesEvent):
                passages = [SourcePassage(n=i, **h.model_dump()).model_dump() for i, h in enumerate(event.hits, 1)]
                yield sse("sources", {"passages": passages})
            elif isinstance(event, DeltaEvent):
                yield sse("delta", {"text": event.text})
            elif isinstance(event, AnswerEvent):
                metrics.observe_answer(event.answer.timings_ms)
                yield sse("answer", event.answer.model_dump())
    except RagError as exc:
        yield sse("error", error_body(exc.code, exc.message, exc.details))
        return
    except Exception as exc:  # the stream has started: report, never drop the connection silently
        yield sse("error", internal_error_body(exc))
        return
    yield sse("done", {})
