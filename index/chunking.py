"""Sentence-packed chunks with exact character offsets.

Chunks never cut a sentence (a single over-long sentence is cut at word
boundaries); neighbours share ``overlap`` sentences. ``text[start:end]`` of
the stored text is the chunk text, by construction.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Sequence

from llama_index.core.node_parser.interface import NodeParser
from llama_index.core.schema import BaseNode, TextNode

from rag.text import sentence_spans, word_count
from rag.types import Chunk


def chunk_id(doc_id: str, start: int, end: int, text: str) -> str:
    """Stable: the same text at the same place of the same document, the same id."""
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    return f"{doc_id}:{start}-{end}:{digest}"


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _split_long(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Cut one over-long span into pieces of about ``size`` words."""
    words = [m.span() for m in re.finditer(r"\S+", text[start:end])]
    pieces = []
    for i in range(0, len(words), size):
        group = words[i:i + size]
        pieces.append((start + group[0][0], start + group[-1][1]))
    return pieces


def chunk_spans(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    units: list[tuple[int, int]] = []
    for s, e in sentence_spans(text):
        if word_count(text[s:e]) > size:
            units.extend(_split_long(text, s, e, size))
        else:
            units.append((s, e))
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j, words = i, 0
        while j < len(units) and (j == i or words + word_count(text[units[j][0]:units[j][1]]) <= size):
            words += word_count(text[units[j][0]:units[j][1]])
            j += 1
        spans.append((units[i][0], units[j - 1][1]))
        if j >= len(units):
            break
        # Repeat the last ``overlap`` units only when the next chunk then still
        # reaches a new unit; otherwise it would lie inside this one.
        nxt = max(i + 1, j - overlap)
        carried = sum(word_count(text[a:b]) for a, b in units[nxt:j])
        if carried + word_count(text[units[j][0]:units[j][1]]) > size:
            nxt = j
        i = nxt
    return spans


def chunk_text(doc_id: str, text: str, size: int, overlap: int) -> list[Chunk]:
    return [
        Chunk(chunk_id=chunk_id(doc_id, s, e, text[s:e]), doc_id=doc_id, start=s, end=e, text=text[s:e])
        for s, e in chunk_spans(text, size, overlap)
    ]


class OffsetSentenceChunker(NodeParser):
    """llama-index node parser over :func:`chunk_text`; nodes carry exact offsets."""

    size: int = 120
    overlap: int = 1

    def _parse_nodes(self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any) -> list[BaseNode]:
        out: list[BaseNode] = []
        for node in nodes:
            doc_id = node.metadata.get("doc_id") or node.node_id
            for chunk in chunk_text(doc_id, node.get_content(), self.size, self.overlap):
                out.append(TextNode(
                    id_=chunk.chunk_id, text=chunk.text,
                    start_char_idx=chunk.start, end_char_idx=chunk.end,
                    metadata={"doc_id": doc_id, "title": node.metadata.get("title") or "",
                              "start": chunk.start, "end": chunk.end},
                    excluded_embed_metadata_keys=["doc_id", "title", "start", "end"],
                    excluded_llm_metadata_keys=["doc_id", "start", "end"],
                ))
        return out
