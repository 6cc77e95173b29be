"""What a chat model reads: the best sentences with their neighbours, not whole passages.

A small model on a CPU reads its prompt at 30–90 tokens a second, so the
prompt is most of an answer's time. The assessment has already ranked every
retrieved sentence by how likely it is to answer; the model gets the best few,
each with the sentence before it (who "he" is) and after it (the "because"
that follows), neighbouring windows of one passage merged. Each window is a
:class:`Hit` cut from its retrieved passage with exact offsets, so a citation
of it is still exact to the character and still points into a retrieved passage.
"""

from __future__ import annotations

from rag.answerability import Assessment
from rag.text import is_sentence, sentence_spans
from rag.types import Hit


def window_hit(hit: Hit, start: int, end: int) -> Hit:
    """The part ``start:end`` (document offsets) of a retrieved passage, as a passage of its own."""
    return hit.model_copy(update={"start": start, "end": end, "text": hit.text[start - hit.start:end - hit.start]})


def sentence_evidence(assessment: Assessment, sentences: int) -> list[Hit]:
    """The ``sentences`` best candidates, each widened by a neighbour on both sides, best window first."""
    windows: dict[int, list[tuple[int, int, float]]] = {}  # hit index → (start, end, best p)
    for candidate in assessment.candidates[:sentences]:
        hit = assessment.hits[candidate.hit_index]
        spans = [s for s in sentence_spans(hit.text, offset=hit.start)
                 if is_sentence(hit.text[s[0] - hit.start:s[1] - hit.start])]
        at = next((i for i, (s, _) in enumerate(spans) if s == candidate.start), None)
        if at is None:
            continue
        start, end = spans[max(0, at - 1)][0], spans[min(len(spans) - 1, at + 1)][1]
        windows.setdefault(candidate.hit_index, []).append((start, end, candidate.p))
    out: list[tuple[float, Hit]] = []
    for index, spans in windows.items():
        for start, end, p in _merged(spans):
            out.append((p, window_hit(assessment.hits[index], start, end)))
    out.sort(key=lambda item: -item[0])
    return [hit for _, hit in out]


def _merged(spans: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """Overlapping or touching windows of one passage as one, keeping the best ``p``."""
    merged: list[tuple[int, int, float]] = []
    for start, end, p in sorted(spans):
        if merged and start <= merged[-1][1] + 3:  # white space between them at most
            s, e, q = merged[-1]
            merged[-1] = (s, max(e, end), max(p, q))
        else:
            merged.append((start, end, p))
    return merged
