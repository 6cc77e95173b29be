"""Ask: retrieve → judge (answerability: the confidence gate) → (optionally) the reading check of the best
sentences → draft (extractive or chat model) → verify → Answer, whole or as a stream of events. A chat model's
answer that quotes sentences the check has not read is read too, after verification."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Generator, Iterator, Union

from rag.answerability import Assessment, Assessor
from rag.answering import Answerer, Draft, StreamingAnswerer
from rag.answering.reading_check import ReadingCheck, check_refusal_reason
from rag.citations import verify_sentences
from rag.errors import IndexEmptyError, InvalidInputError, UpstreamError
from rag.retrieval import Retrieval, Retriever
from rag.settings import MAX_TOP_K, Settings
from rag.support import SupportChecker
from rag.types import REFUSAL, Answer, Hit, Timings

log = logging.getLogger(__name__)


@dataclass
class SourcesEvent:
    hits: list[Hit]


@dataclass
class DeltaEvent:
    text: str


@dataclass
class AnswerEvent:
    answer: Answer


Event = Union[SourcesEvent, DeltaEvent, AnswerEvent]


@dataclass
class _Reading:
    """What the reading check found, before and after the answer was written."""

    read: list[str] = field(default_factory=list)  # the sentences it has read
    evidence: Draft | None = None  # the extractive draft it read first
    refusal: str | None = None  # why the answer is refused
    fallback: str | None = None  # why the answer is not what was asked for: an unchecked answer, another mode
    seconds: float = 0.0  # time spent in the check

    def note(self, fallback: str | None) -> None:
        """Add a fallback to those already noted (a check that failed before the chat model did is still worth
        saying)."""
        self.fallback = "; ".join(filter(None, [self.fallback, fallback])) or None


def validate_question(question: object, max_chars: int) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InvalidInputError("the question is empty", field="question")
    if len(question) > max_chars:
        raise InvalidInputError(f"the question is {len(question)} characters long; the limit is {max_chars}",
                                field="question", limit=max_chars)
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a JSON \u escape, an undecodable argv byte): not text
        raise InvalidInputError("the question is not valid Unicode text (it holds a lone surrogate)",
                                field="question") from None
    return question.strip()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _all_read(quotes: list[str], read: list[str]) -> bool:
    """Does every quote lie within a sentence the reading check has already read?"""
    return all(any(q.strip() in r for r in read) for q in quotes)


def refusal_text(reason: str | None) -> str:
    """The refusal, followed by what the evidence does and does not say."""
    return f"{REFUSAL} {reason}" if reason else REFUSAL


class AskPipeline:
    def __init__(self, settings: Settings, retriever: Retriever, answerers: dict[str, Callable[[], Answerer]],
                 checker: SupportChecker, is_empty: Callable[[], bool], assessor: Assessor) -> None:
        self.settings = settings
        self.retriever = retriever
        self._answerer_factories = answerers
        self._answerers: dict[str, Answerer] = {}
        self.checker = checker
        self.is_empty = is_empty
        self.assessor = assessor
        self._reading_check: ReadingCheck | None = None

    @property
    def min_confidence(self) -> float:
        configured = self.settings.answer.min_confidence
        return self.assessor.model.recommended_threshold if configured is None else configured

    def gated(self, mode: str) -> bool:
        """Does a low confidence refuse before the answerer runs? Always offline; for a chat model, by setting."""
        return mode == "extractive" or self.settings.answer.gate_chat_model

    def answerer(self, mode: str) -> Answerer:
        if mode not in self._answerer_factories:
            raise InvalidInputError(f"unknown answer mode {mode!r}; choose one of {sorted(self._answerer_factories)}",
                                    field="mode")
        if mode not in self._answerers:
            self._answerers[mode] = self._answerer_factories[mode]()
        return self._answerers[mode]

    @property
    def reading_check(self) -> ReadingCheck | None:
        """The model that reads an answer's quotes (``RAG_ANSWER_CHECK``), or None when the check is off."""
        mode = self.settings.answer.check
        if mode == "off":
            return None
        if self._reading_check is None:
            self._reading_check = ReadingCheck(self.answerer(mode), self.settings.llm.timeout)
        return self._reading_check

    def ask(self, question: str, top_k: int | None = None, mode: str | None = None) -> Answer:
        """The verified answer (the last event of :meth:`ask_stream`)."""
        final = None
        for event in self._start(question, top_k, mode, live=False):
            final = event
        assert isinstance(final, AnswerEvent)
        return final.answer

    def ask_stream(self, question: str, top_k: int | None = None, mode: str | None = None) -> Iterator[Event]:
        """Events: ``SourcesEvent`` (retrieved passages), ``DeltaEvent``s (draft text), then ``AnswerEvent``.

        Bad input and an empty index raise here, before the first event, so an
        edge can still answer with an error status. The deltas are the draft
        (a chat model's tokens as they come); the final answer is verified and
        may cite less: it is the truth.
        """
        return self._start(question, top_k, mode, live=True)

    def _start(self, question: str, top_k: int | None, mode: str | None, live: bool) -> Iterator[Event]:
        started = time.perf_counter()
        question = validate_question(question, self.settings.max_question_chars)
        if top_k is not None and not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInputError(f"top_k must be between 1 and {MAX_TOP_K}", field="top_k")
        mode = mode or self.settings.answer.mode
        answerer = self.answerer(mode)
        if self.is_empty():
            raise IndexEmptyError("the index is empty: run `rag ingest` first")
        return self._events(started, question, top_k, mode, answerer, live)

    def _events(self, started: float, question: str, top_k: int | None, mode: str,
                answerer: Answerer, live: bool) -> Iterator[Event]:
        retrieval = self.retriever.retrieve(question, top_k)
        retrieved = time.perf_counter()
        yield SourcesEvent(retrieval.hits)
        # timed with the draft: it decides whether to answer
        assessment = self.assessor.assess(question, retrieval, self.min_confidence)
        reading = _Reading()
        draft = Draft([], retrieval.hits)
        if not self.gated(mode) or assessment.answers():
            reading = self._read_evidence(question, retrieval, assessment)
            if reading.refusal is None:
                draft, mode, fallback = yield from self._write(question, retrieval, assessment, mode, answerer,
                                                               reading, live)
                reading.note(fallback)
        drafted = time.perf_counter()
        verified = verify_sentences(draft.sentences, draft.hits, self.checker, reattribute=mode != "extractive")
        if verified.sentences:
            self._read_written(question, [c.quote for c in verified.citations], reading)
        verified_at = time.perf_counter()

        # the check's time counts as verification, wherever it ran
        timings = Timings(retrieve=_ms(retrieved - started), generate=_ms(drafted - retrieved - reading.seconds),
                          verify=_ms(verified_at - drafted + reading.seconds))
        timings.total = round(timings.retrieve + timings.generate + timings.verify, 2)
        answered = bool(verified.sentences) and reading.refusal is None
        if answered:
            text = verified.text
        else:
            text = refusal_text(reading.refusal if reading.refusal is not None else assessment.reason)
        yield AnswerEvent(Answer(
            question=question, answer=text, answerable=answered, sentences=verified.sentences if answered else [],
            citations=verified.citations if answered else [],
            dropped_citations=verified.dropped if reading.refusal is None else 0, mode=mode, timings_ms=timings,
            confidence=assessment.confidence, fallback=reading.fallback))

    def _read_evidence(self, question: str, retrieval: Retrieval, assessment: Assessment) -> _Reading:
        """The reading check of the sentences that best answer the question (what the offline answer would
        quote), before anything is written: a refusal here costs no generation."""
        if self.reading_check is None:
            return _Reading()
        evidence = self.answerer("extractive").draft(question, retrieval, assessment)
        reading = _Reading(read=[s.text for s in evidence.sentences], evidence=evidence)
        if reading.read:
            began = time.perf_counter()
            reading.refusal, reading.fallback = self._check(question, reading.read)
            reading.seconds = time.perf_counter() - began
        return reading

    def _read_written(self, question: str, quotes: list[str], reading: _Reading) -> None:
        """A written answer that quotes sentences the check has not read is read as written (an offline answer
        is the evidence already read)."""
        if self.reading_check is None or _all_read(quotes, reading.read):
            return
        began = time.perf_counter()
        reading.refusal, unchecked = self._check(question, quotes)
        reading.seconds += time.perf_counter() - began
        reading.fallback = reading.fallback or unchecked  # the same failed check is said once

    def _write(self, question: str, retrieval: Retrieval, assessment: Assessment, mode: str, answerer: Answerer,
               reading: _Reading, live: bool) -> Generator[Event, None, tuple[Draft, str, str | None]]:
        """The draft, its pieces yielded as deltas; returns (draft, the mode that wrote it, why it is not the
        mode asked for). A failed chat model falls back to the extractive answer unless fallbacks are off."""
        try:
            draft = yield from self._draft(question, retrieval, assessment, answerer, reading, live)
            return draft, mode, None
        except UpstreamError as exc:
            if mode == "extractive" or not self.settings.llm.fallback:
                raise
            log.warning("%s answer failed, answering extractively instead: %s", mode, exc.message)
            draft = yield from self._draft(question, retrieval, assessment, self.answerer("extractive"), reading,
                                           live)
            return draft, "extractive", f"answered extractively: the {mode} model failed: {exc.message}"

    def _check(self, question: str, quotes: list[str]) -> tuple[str | None, str | None]:
        """The reading check of an answer's quotes: (why the answer is refused, or None; why the check did not
        run, or None). A failed check leaves the answer unchecked and says so, unless fallbacks are off."""
        check = self.reading_check
        assert check is not None
        try:
            p = check.p_answers(question, quotes)
        except UpstreamError as exc:
            if not self.settings.llm.fallback:
                raise
            log.warning("the reading check failed; the answer is given unchecked: %s", exc.message)
            return None, f"unchecked: the reading check failed: {exc.message}"
        if p < self.settings.answer.check_threshold:
            return check_refusal_reason(quotes[0]), None
        return None, None

    @staticmethod
    def _draft(question: str, retrieval: Retrieval, assessment: Assessment, answerer: Answerer, reading: _Reading,
               live: bool) -> Generator[Event, None, Draft]:
        """The answerer's draft, its pieces yielded as deltas; returns the whole draft. The extractive draft the
        reading check has read is not drafted again."""
        if answerer.mode == "extractive" and reading.evidence is not None:
            draft = reading.evidence
        else:
            stream = answerer.draft_stream if live and isinstance(answerer, StreamingAnswerer) else None
            if stream is not None:
                pieces = stream(question, retrieval, assessment)
                while True:
                    try:
                        piece = next(pieces)
                    except StopIteration as done:
                        return done.value
                    yield DeltaEvent(piece)
            draft = answerer.draft(question, retrieval, assessment)
        for piece in draft.pieces():
            yield DeltaEvent(piece)
        return draft
