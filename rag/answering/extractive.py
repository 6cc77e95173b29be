"""The offline answerer: the retrieved sentences that answer the question, and no others.

It works from the :class:`~rag.answerability.Assessment` of the evidence:
every candidate sentence already carries ``p``, the learned probability that
it answers the question, and the pipeline has already refused when the best
one is not good enough. The answer is the best sentence, and the runner-up
when its ``p`` is at least ``runner_up_share`` of the best one's: the model
cannot tell such a pair apart (out of fold, the best sentence alone answers
0.80 of SQuAD's answerable questions and 0.75 of the news set's; with such a
runner-up 0.85 and 0.79, per-answer citation precision 0.80 → 0.80 and
0.75 → 0.75). Another sentence joins only when it is itself likely to answer
(``p`` at least ``relative_cutoff`` of the best one's) and it adds something the answer
needs: a word of the question the chosen sentences do not hold yet (the
other part of a multi-part question), or, for a why-question, the stated
cause the chosen sentences lack. When the question asks for a kind of answer
(a number, date or name; for a why-question, a cause) and the chosen
sentences hold none, the first of the next few sentences that holds one
(a number, date or name within a few words of a word of the question: a
date elsewhere in the sentence belongs to something else) answers in the best
one's place, whatever its ``p`` ("How long did the call last?": the best
sentence is about the call, the next says "about 45 minutes"; measured out of
fold on both gold sets, the answers that hold a right sentence went 0.75 →
0.79 on news and 0.80 → 0.82 on SQuAD; "Why was the forum cancelled?": the
best sentence names the forum, the next says "Due to Covid-19 concerns, the
event has been cancelled"). The best sentence stays beside it only when it is
the best of a part of the question: alone it states nothing asked (kept
beside, strict citation precision was 0.839 on news and 0.818 on SQuAD's
answerable questions; in its place 0.875 and 0.828, must-include the same).
A sentence that restates
a chosen one never joins. When the question names a year, only sentences whose
passage speaks of that year may join (for the lookahead: when any passage
does; undated articles cannot be told apart by year). The chosen sentences are
ordered by passage rank, then by position, each with its passage's marker.
"""

from __future__ import annotations

from typing import Callable, Sequence

from rag.answerability import Assessment
from rag.answerability.features import Candidate
from rag.answerability.question import asks_how_long, question_asks_cause, states_how_long
from rag.answering import Draft
from rag.citations import CitedSentence
from rag.retrieval import Retrieval
from rag.sentence_vectors import SentenceVectors
from rag.settings import AnswerSettings
from rag.text import content_terms

REDUNDANT_COSINE = 0.88
RESTATED_SHARE = 0.8
TYPED_LOOKAHEAD = 2  # how many sentences after the best one may bring the kind of answer asked for


def restates(a: Candidate, b: Candidate) -> bool:
    """The shorter sentence's content words lie (almost) all inside the other's: saying it twice."""
    small, large = (a.terms, b.terms) if len(a.terms) <= len(b.terms) else (b.terms, a.terms)
    return bool(small) and len(small & large) / len(small) >= RESTATED_SHARE


def reading_order(chosen: list[Candidate]) -> list[Candidate]:
    """Documents in the order of their best passage, sentences in document order within each."""
    first_rank: dict[str, int] = {}
    for c in sorted(chosen, key=lambda c: c.hit_index):
        first_rank.setdefault(c.doc_id, c.hit_index)
    return sorted(chosen, key=lambda c: (first_rank[c.doc_id], c.start))


def asked_kind_holder(question: str, c: Candidate,
                      beside_question: bool = False) -> Callable[[Candidate], bool] | None:
    """What holding the kind of answer the question asks for means, from a candidate's features: a number,
    date or name (``type_present``; with ``beside_question``, within a few words of a word of the question,
    ``type_near``), for "how long" a stated length of time or distance (a date or a count is not one), or,
    for a why-question, a stated cause; None when it asks for neither."""
    if asks_how_long(question):
        return lambda k: states_how_long(k.text)
    if c.features.get("type_expected"):
        if beside_question:
            return lambda k: bool(k.features.get("type_present") and k.features.get("type_near"))
        return lambda k: bool(k.features.get("type_present"))
    if c.features.get("cause_asked"):
        return lambda k: bool(k.features.get("cause_asked_and_stated"))
    return None


class ExtractiveAnswerer:
    mode = "extractive"

    def __init__(self, settings: AnswerSettings, vectors: SentenceVectors) -> None:
        self.settings = settings
        self.vectors = vectors

    def select(self, question: str, ranked: list[Candidate], parts: Sequence[Assessment] = ()) -> list[Candidate]:
        """The best sentence, then each part's best one (a multi-part question), plus the few that add what
        the answer still needs."""
        if not ranked:
            return []
        best = ranked[0]
        chosen = [best]
        floor = best.p * self.settings.relative_cutoff
        asked = set(content_terms(question))
        wants_cause = question_asks_cause(question)
        by_place = {(c.doc_id, c.start): c for c in ranked}
        part_best = [by_place[(a.candidates[0].doc_id, a.candidates[0].start)] for a in parts
                     if a.candidates and a.answers()]
        pool = [c for c in ranked[1:] if c.p >= floor and not c.features.get("year_missing")]
        # the runner-up, when nearly as likely to answer: the best sentence alone is the answering one for only
        # about four questions in five, and a close second is right about as often as the first is wrong
        runner_up = [c for c in ranked[1:2]
                     if c.p >= best.p * self.settings.runner_up_share and not c.features.get("year_missing")]
        holds_asked = asked_kind_holder(question, best)
        brings_asked = asked_kind_holder(question, best, beside_question=True)
        typed: list[Candidate] = []
        if holds_asked is not None and brings_asked is not None and not holds_asked(best):
            # a year the question names rules out a sentence whose passage never speaks of it, unless none does
            dated = any(not c.features.get("year_missing") for c in ranked)
            typed = [c for c in ranked[1:1 + TYPED_LOOKAHEAD] if brings_asked(c) and not c.predates_question
                     and not (dated and c.features.get("year_missing"))]
        if not pool and not part_best and not typed and not runner_up:
            return chosen
        considered = list({id(c): c for c in [best, *runner_up, *part_best, *pool, *typed]}.values())
        vectors = dict(zip((id(c) for c in considered), self.vectors.get([c.text for c in considered])))

        def redundant(c: Candidate) -> bool:
            return any(float(vectors[id(c)] @ vectors[id(k)]) >= REDUNDANT_COSINE or restates(c, k) for k in chosen)

        for c in [*runner_up, *part_best]:
            if len(chosen) < self.settings.max_sentences and all(c is not k for k in chosen) and not redundant(c):
                chosen.append(c)
        for c in pool:
            if len(chosen) >= self.settings.max_sentences:
                break
            covered = set().union(*(k.terms for k in chosen))
            adds_part = bool((asked - covered) & c.terms)
            adds_cause = wants_cause and bool(c.features.get("cause_asked_and_stated")) and not any(
                k.features.get("cause_asked_and_stated") for k in chosen)
            if (adds_part or adds_cause) and not redundant(c):
                chosen.append(c)
        if typed and not any(holds_asked(k) for k in chosen):
            for c in typed:
                if len(chosen) < self.settings.max_sentences and not redundant(c):
                    chosen.append(c)
                    if all(best is not k for k in part_best):
                        # the best sentence lacks what is asked: the one that states it answers in its place
                        chosen.remove(best)
                    break
        return reading_order(chosen)

    def draft(self, question: str, retrieval: Retrieval, assessment: Assessment | None = None) -> Draft:
        if assessment is None or not assessment.candidates:
            return Draft([], retrieval.hits)
        chosen = self.select(question, assessment.candidates, assessment.parts)
        return Draft([CitedSentence(c.text, [c.hit_index + 1]) for c in chosen], retrieval.hits)

