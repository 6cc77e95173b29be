"""The JSON answer format: sentences with the numbers of the passages that state them.

Small models drop or garble ``[n]`` markers in free text; asked for JSON under
a schema the server enforces (llama.cpp grammar, vLLM guided decoding, OpenAI
structured outputs), every sentence carries its numbers by construction. The
reply is rendered back to ``[n]``-marked text for verification, which stays
the judge of what is cited. A reply that is not the JSON asked for is read
as ``[n]``-marked text (a server that ignored the schema), never thrown away.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rag.citations import CitedSentence, parse_cited_sentences

MAX_SENTENCES = 4
MAX_SOURCES_PER_SENTENCE = 3


def answer_schema(passages: int) -> dict[str, Any]:
    """``{"answerable": bool, "sentences": [{"text": str, "sources": [n, …]}]}`` with n in 1..passages."""
    return {
        "type": "object",
        "properties": {
            "answerable": {"type": "boolean"},
            "sentences": {
                "type": "array", "maxItems": MAX_SENTENCES,
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "sources": {"type": "array", "minItems": 1, "maxItems": MAX_SOURCES_PER_SENTENCE,
                                    "items": {"type": "integer", "enum": list(range(1, passages + 1))}},
                    },
                    "required": ["text", "sources"], "additionalProperties": False,
                },
            },
        },
        "required": ["answerable", "sentences"], "additionalProperties": False,
    }


def response_format(passages: int) -> dict[str, Any]:
    """The ``response_format`` of a chat completion request that enforces :func:`answer_schema`."""
    return {"type": "json_schema",
            "json_schema": {"name": "cited_answer", "strict": True, "schema": answer_schema(passages)}}


@dataclass
class StructuredReply:
    answerable: bool
    sentences: list[tuple[str, list[int]]]

    def cited(self) -> list[CitedSentence]:
        """The sentences to verify; none (a refusal) when the model says the passages do not answer."""
        if not self.answerable:
            return []
        return [CitedSentence(_clean(text), numbers) for text, numbers in self.sentences if _clean(text)]


def parse_reply(content: str) -> StructuredReply | None:
    """The reply as JSON of the asked shape, or None when it is something else (then read it as text)."""
    try:
        data = json.loads(content)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("sentences", []), list):
        return None
    sentences: list[tuple[str, list[int]]] = []
    for item in data.get("sentences", []):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            continue
        numbers = [n for n in item.get("sources") or [] if isinstance(n, int) and not isinstance(n, bool)]
        sentences.append((item["text"], list(dict.fromkeys(numbers))))
    return StructuredReply(bool(data.get("answerable", bool(sentences))), sentences)


def reply_sentences(content: str) -> list[CitedSentence]:
    """Any reply as sentences with their source numbers: the JSON's, or those of ``[n]``-marked text."""
    parsed = parse_reply(content)
    return parse_cited_sentences(content) if parsed is None else parsed.cited()


def _clean(text: str) -> str:
    """A sentence as shown: markers the model wrote inside the text are dropped (its ``sources`` say which)."""
    return re.sub(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]", "", text).strip()


_SENTENCE = re.compile(r'"text"\s*:\s*"((?:[^"\\]|\\.)*)("?)(?:\s*,\s*"sources"\s*:\s*\[([\d,\s]*)(\]?))?')


class StreamRenderer:
    """Readable text from a JSON reply that is still arriving: each sentence's words as they come, its markers
    once its ``sources`` are complete. ``feed`` returns only what is new; nothing already shown changes (the
    verified answer that ends a stream is rendered afresh)."""

    def __init__(self, numbers: dict[int, int] | None = None) -> None:
        self.buffer = ""
        self.shown = ""
        self.numbers = numbers or {}  # evidence number → the number of the passage it was cut from

    def feed(self, piece: str) -> str:
        self.buffer += piece
        rendered = self._render()
        if not rendered.startswith(self.shown):
            return ""
        new, self.shown = rendered[len(self.shown):], rendered
        return new

    def flush(self) -> str:
        """Nothing is held back: a sentence still open at the end was never finished by the model."""
        return ""

    def _render(self) -> str:
        parts: list[str] = []
        for match in _SENTENCE.finditer(self.buffer):
            raw, closed, numbers, numbers_closed = match.groups()
            text = _unescape(raw if closed else re.sub(r"\\[^\"]?$|\\u[0-9a-fA-F]{0,3}$", "", raw))
            if numbers_closed:  # markers after the text as written: what is shown never changes
                shown = dict.fromkeys(self.numbers.get(int(n), int(n)) for n in re.findall(r"\d+", numbers))
                parts.append(text + " " + "".join(f"[{n}]" for n in shown))
            else:
                parts.append(text)
                break  # the sentence is still being written
        return " ".join(parts)


def _unescape(raw: str) -> str:
    try:
        return json.loads(f'"{raw}"')
    except json.JSONDecodeError:
        return raw


class MarkerRenumberer:
    """``[n]``-marked text that is still arriving, with each marker's evidence number replaced by its passage
    number; a ``[`` whose marker is not complete yet is held back until it is."""

    def __init__(self, numbers: dict[int, int]) -> None:
        self.numbers = numbers
        self.pending = ""

    def feed(self, piece: str) -> str:
        text = self.pending + piece
        cut = text.rfind("[")
        if cut != -1 and "]" not in text[cut:] and len(text) - cut < 16:
            text, self.pending = text[:cut], text[cut:]
        else:
            self.pending = ""
        return _MARKER.sub(lambda m: "".join(f"[{self.numbers.get(int(n), int(n))}]"
                                             for n in re.findall(r"\d+", m.group())), text)

    def flush(self) -> str:
        rest, self.pending = self.pending, ""
        return rest


_MARKER = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")
