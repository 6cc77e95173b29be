"""Ask: retrieve → draft (extractive or chat model) → verify → Answer."""

from __future__ import annotations

import time
from typing import Callable

from rag.answering import Answerer
from rag.citations import verify
from rag.errors import IndexEmptyError, InvalidInputError
from rag.retrieval import HybridRetriever
from rag.settings import Settings
from rag.support import SupportChecker
from rag.types import REFUSAL, Answer, Timings


def validate_question(question: object, max_chars: int) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InvalidInputError("the question is empty", field="question")
    if len(question) > max_chars:
        raise InvalidInputError(f"the question is {len(question)} characters long; the limit is {max_chars}",
                                field="question", limit=max_chars)
    return question.strip()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


class AskPipeline:
    def __init__(self, settings: Settings, retriever: HybridRetriever, answerers: dict[str, Callable[[], Answerer]],
                 checker: SupportChecker, is_empty: Callable[[], bool]) -> None:
        self.settings = settings
        self.retriever = retriever
        self._answerer_factories = answerers
        self._answerers: dict[str, Answerer] = {}
        self.checker = checker
        self.is_empty = is_empty

    def answerer(self, mode: str) -> Answerer:
        if mode not in self._answerer_factories:
            raise InvalidInputError(f"unknown answer mode {mode!r}; choose one of {sorted(self._answerer_factories)}",
                                    field="mode")
        if mode not in self._answerers:
            self._answerers[mode] = self._answerer_factories[mode]()
        return self._answerers[mode]

    def ask(self, question: str, top_k: int | None = None, mode: str | None = None) -> Answer:
        started = time.perf_counter()
        question = validate_question(question, self.settings.max_question_chars)
        if top_k is not None and not 1 <= top_k <= 50:
            raise InvalidInputError("top_k must be between 1 and 50", field="top_k")
        mode = mode or self.settings.answer.mode
        answerer = self.answerer(mode)
        if self.is_empty():
            raise IndexEmptyError("the index is empty: run `rag ingest` first")

        retrieval = self.retriever.retrieve(question, top_k)
        retrieved = time.perf_counter()
        draft = answerer.draft(question, retrieval)
        drafted = time.perf_counter()
        verified = verify(draft.text, draft.hits, self.checker)
        verified_at = time.perf_counter()

        timings = Timings(retrieve=_ms(retrieved - started), generate=_ms(drafted - retrieved),
                          verify=_ms(verified_at - drafted))
        timings.total = round(timings.retrieve + timings.generate + timings.verify, 2)
        if not verified.sentences:
            return Answer(question=question, answer=REFUSAL, answerable=False, sentences=[], citations=[],
                          dropped_citations=verified.dropped, mode=mode, timings_ms=timings)
        return Answer(question=question, answer=verified.text, answerable=True, sentences=verified.sentences,
                      citations=verified.citations, dropped_citations=verified.dropped, mode=mode,
                      timings_ms=timings)
