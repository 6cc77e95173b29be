"""``[n]`` markers: parsing them out of an answer and verifying each one.

Verification keeps a marker only when ``n`` names a retrieved passage and
that passage supports the sentence carrying it. Sentences left with no
supported citation are dropped (an unsupported claim is not shown as if it
were sourced); an answer with none left is a refusal. Surviving citations
are renumbered 1..m in order of appearance, one per distinct quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.support import Support, SupportChecker
from rag.text import sentence_spans
from rag.types import AnswerSentence, Citation, Hit

MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


@dataclass
class CitedSentence:
    text: str  # without markers
    markers: list[int]


@dataclass
class Verified:
    sentences: list[AnswerSentence]
    citations: list[Citation]
    dropped: int

    @property
    def text(self) -> str:
        return "".join(rendered_pieces([(s.text, s.citations) for s in self.sentences]))


def _numbers(marker_body: str) -> list[int]:
    return [int(x) for x in re.split(r"\s*[,;]\s*", marker_body)]


def parse_cited_sentences(answer: str) -> list[CitedSentence]:
    """Split an answer into sentences, each with the marker numbers it carries.

    Markers standing after a sentence's end ("... Singapore. [1]") belong to
    that sentence, not to the next one.
    """
    out: list[CitedSentence] = []
    for start, end in sentence_spans(answer):
        piece = answer[start:end]
        lead = re.match(r"^(\s*\[\d+(?:\s*[,;]\s*\d+)*\])+", piece)
        if lead and out:
            out[-1].markers.extend(n for m in MARKER.finditer(lead.group()) for n in _numbers(m.group(1)))
            piece = piece[lead.end():]
        markers = [n for m in MARKER.finditer(piece) for n in _numbers(m.group(1))]
        text = MARKER.sub("", piece)
        text = re.sub(r"\(\s*(?:see|cf\.?|e\.g\.,?)?\s*\)", "", text)  # "(see [2])" leaves no "(see )"
        text = re.sub(r"\s+([.,;:!?])", r"\1", text).strip()
        text = re.sub(r"\s{2,}", " ", text)
        if any(ch.isalnum() for ch in text):
            out.append(CitedSentence(text, list(dict.fromkeys(markers))))
    return out


def rendered_pieces(sentences: list[tuple[str, list[int]]]) -> list[str]:
    """Each sentence rendered with its markers, the ones after the first led by a space: joined, the answer
    text; one by one, the pieces a stream sends."""
    return [("" if i == 0 else " ") + render_sentence(text, numbers) for i, (text, numbers) in enumerate(sentences)]


def render_sentence(text: str, numbers: list[int]) -> str:
    """``text [1][2].``: markers before a plain final period, else after the text.

    A sentence always ends closed, so the next one cannot run into it when
    the answer is parsed again.
    """
    if not numbers:
        return text
    marks = "".join(f"[{n}]" for n in numbers)
    if text.endswith(".") and not text.endswith(".."):
        return f"{text[:-1]} {marks}."
    if re.search(r"[.!?][\"'”’)\]]*$", text):
        return f"{text} {marks}"
    return f"{text} {marks}."


def verify(answer: str, hits: list[Hit], checker: SupportChecker, reattribute: bool = False) -> Verified:
    """:func:`verify_sentences` of ``[n]``-marked text."""
    return verify_sentences(parse_cited_sentences(answer), hits, checker, reattribute)


def verify_sentences(drafted: list[CitedSentence], hits: list[Hit], checker: SupportChecker,
                     reattribute: bool = False) -> Verified:
    """Keep only markers that point at a retrieved passage supporting their sentence.

    With ``reattribute`` (a written answer), a sentence none of whose markers holds is cited to the first
    passage that does support it, if one does: small models state a fact of passage 1 and number it 2. The
    wrong markers still count as dropped; a sentence no passage supports is still dropped.
    """
    sentences: list[AnswerSentence] = []
    citations: list[Citation] = []
    number_of: dict[tuple[str, int, int], int] = {}  # (doc_id, start, end): one number per distinct quote
    dropped = 0
    for cited in drafted:
        kept: list[int] = []
        supported: list[tuple[Hit, Support]] = []
        for marker in cited.markers:
            if not 1 <= marker <= len(hits):
                dropped += 1
                continue
            hit = hits[marker - 1]
            support = checker.check(cited.text, hit)
            if support is None:
                dropped += 1
                continue
            supported.append((hit, support))
        if not supported and reattribute and cited.markers:  # renumber a claimed source, never invent one
            supported = next(([(hit, s)] for hit in hits if (s := checker.check(cited.text, hit)) is not None), [])
        for hit, support in supported:
            key = (hit.doc_id, support.start, support.end)
            if key not in number_of:
                number_of[key] = len(citations) + 1
                citations.append(Citation(
                    n=number_of[key], doc_id=hit.doc_id, title=hit.title, chunk_id=hit.chunk_id,
                    start=support.start, end=support.end,
                    quote=hit.text[support.start - hit.start:support.end - hit.start], score=hit.score))
            if number_of[key] not in kept:
                kept.append(number_of[key])
        if kept:
            sentences.append(AnswerSentence(text=cited.text, citations=kept))
    return Verified(sentences=sentences, citations=citations, dropped=dropped)
