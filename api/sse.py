"""Server-Sent Events framing, and how the OpenAPI schema documents a stream."""

from __future__ import annotations

import json
from typing import Any


def sse(event: str | None, data: Any) -> str:
    """One SSE message; ``data`` is JSON-encoded unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return head + "".join(f"data: {line}\n" for line in payload.split("\n")) + "\n"


def stream_response(description: str, events: tuple[str, ...] | None = None) -> dict[int, dict[str, Any]]:
    """OpenAPI ``responses`` for a 200 that is a Server-Sent Events stream: ``itemSchema`` describes one event
    (as FastAPI documents its own streams); ``events`` lists the event names (None: unnamed events)."""
    event = {"type": "string"} if events is None else {"enum": list(events)}
    item = {"type": "object", "required": ["data"],
            "properties": {"event": event, "data": {"type": "string"}}}
    return {200: {"description": description, "content": {"text/event-stream": {"itemSchema": item}}}}
