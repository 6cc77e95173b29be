"""Does this evidence answer this question? A learned, calibrated judgement.

Every sentence of the retrieved passages is a *candidate*. For each one a
handful of features say whether it answers the question (see
:data:`rag.answerability.features.FEATURES`): how much of the question's distinctive vocabulary it holds
(IDF over the whole index), whether the question's names and numbers are in
it, whether the kind of answer the question asks for (a number, a date, a
name) is in it beyond the question's own words, its dense similarity to the
question, how the retrievers ranked its passage, and question-level signals
(the question's rare words that no retrieved passage contains, or that the
index does not know at all).

A logistic model fitted by ``python -m eval.calibrate`` on labelled data
(the gold sets, questions asked of a corpus without their article, and
questions with one distinctive word swapped; see README) turns the features into ``p``: the probability that the sentence
answers the question. The answer's ``confidence`` is the best sentence's
``p`` passed through a second, answer-level calibration fitted on the same
data (Platt scaling). Coefficients live in ``rag/assets/answerability.json``
with the data they were fitted on; nothing here is tuned by hand.

The package reads in order: ``question`` (what the question asks for, from
its wording), ``features`` (each candidate measured against it), ``model``
(the fitted weights) and, here, the judgement: :class:`Assessor` gives an
:class:`Assessment` (every sentence's ``p``, the confidence, a refusal's
reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from rag.answerability.features import Candidate, candidates_from, featurize, never_mentioned
from rag.answerability.model import AnswerabilityModel, default_model, sigmoid
from rag.answerability.question import CorpusStats, QuestionTerms, question_parts, value_swap
from rag.retrieval import Retrieval
from rag.sentence_vectors import SentenceVectors
from rag.text import content_terms
from rag.types import Hit


RULED_OUT_LOGIT = -30.0  # a candidate that cannot answer, whatever its features say


@dataclass
class Assessment:
    """What the evidence says about a question: every candidate sentence with its ``p``, best first."""

    confidence: float  # calibrated P(the sources answer the question)
    candidates: list[Candidate]
    question_terms: QuestionTerms
    hits: Sequence[Hit]
    parts: list["Assessment"] = field(default_factory=list)  # one per part of a multi-part question, else none
    threshold: float = 0.5  # the confidence below which the sources are taken not to answer

    def answers(self, threshold: float | None = None) -> bool:
        return self.confidence >= (self.threshold if threshold is None else threshold)

    @property
    def reason(self) -> str:
        """Why the sources do not answer, in words from the evidence (worked out only when asked for)."""
        return explain_refusal(self.question_terms, self.hits, self.candidates[0] if self.candidates else None)


class Assessor:
    def __init__(self, vectors: SentenceVectors, stats: CorpusStats | None,
                 model: AnswerabilityModel | None = None) -> None:
        self.vectors = vectors
        self.stats = stats
        self.model = model or default_model()

    def assess(self, question: str, retrieval: Retrieval, threshold: float | None = None) -> Assessment:
        """The judgement of the whole question, and of each of its parts when it asks more than one thing
        (the whole question's confidence decides whether to answer; each part that passes ``threshold``, by
        default the model's recommendation, brings its best sentence)."""
        threshold = self.model.recommended_threshold if threshold is None else threshold
        assessment = self._assess(question, retrieval, threshold)
        parts = question_parts(question)
        if len(parts) > 1 and assessment.candidates:
            embeddings = self.vectors.get(parts)
            assessment.parts = [self._assess(part, Retrieval(retrieval.hits, vector.tolist()), threshold)
                                for part, vector in zip(parts, embeddings)]
        return assessment

    def _assess(self, question: str, retrieval: Retrieval, threshold: float) -> Assessment:
        candidates = candidates_from(retrieval.hits)
        q = featurize(question, retrieval, candidates, self.vectors, self.stats)
        if not candidates:
            return Assessment(0.0, [], q, retrieval.hits, threshold=threshold)
        logits = self.model.sentence_logits(candidates)
        # a rule, not a weight: an article cannot answer for a year after its own date (too rare to be learned)
        logits[[c.predates_question for c in candidates]] = RULED_OUT_LOGIT
        for c, z in zip(candidates, logits):
            c.p = float(sigmoid(z))
        order = np.argsort(-logits, kind="stable")
        ranked = [candidates[i] for i in order]
        confidence = round(float(self.model.answer_confidence(float(logits[order[0]]))), 4)
        return Assessment(confidence, ranked, q, retrieval.hits, threshold=threshold)


def explain_refusal(q: QuestionTerms, hits: Sequence[Hit], best: Candidate | None) -> str:
    """A refusal that says what the documents do mention and what they do not, from the evidence itself.

    "The documents mention navy and Taiwan but say nothing about warships."
    Words are shown as the question spells them.
    """
    spelled = q.as_written
    present_anywhere = set().union(*(set(content_terms(h.text)) for h in hits)) if hits else set()
    by_idf = sorted((t for t in q.stems if t not in q.wh_modifiers), key=lambda t: -q.stems[t])
    # a thing the question names that no document mentions says most ("the Taiwan *Strait*"); the kind of
    # answer asked for ("which *outlet*") says least: named first and last
    unheard = never_mentioned(q, hits)
    absent = [spelled.get(t, t) for t in sorted(by_idf, key=lambda t: (t not in unheard, t in q.category))
              if t not in present_anywhere][:3]
    near = best.terms if best is not None else present_anywhere
    mentioned = [spelled.get(t, t) for t in by_idf if t in near][:3]
    if not hits:
        return "No passage in the documents relates to this question."
    swap = value_swap(q.tokens, best.text) if best is not None else None
    if swap is not None:  # the closest passage names another thing of the same kind where the question has its own
        return f"The closest passage speaks of “{swap[1]}”, not “{swap[0]}”."
    if absent and mentioned:
        return f"The documents mention {_join(mentioned)} but say nothing about {_join(absent)}."
    if absent:
        return f"The documents say nothing about {_join(absent)}."
    if mentioned:
        return f"The documents mention {_join(mentioned)}, but no passage states what was asked."
    return "No passage in the documents states what was asked."


def _join(items: list[str]) -> str:
    quoted = [f"“{i}”" for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
