"""Extractive selection (cite only what answers) and the ask pipeline's confidence gate."""

from __future__ import annotations

import numpy as np
import pytest

from index.chunking import chunk_text, text_hash
from index.docstore import DocStore
from rag.answerability import Assessment, Assessor
from rag.answerability.features import FEATURES, candidates_from
from rag.answerability.model import AnswerabilityModel
from rag.answerability.question import asks_how_long, states_how_long
from rag.answering import Draft
from rag.answering.extractive import ExtractiveAnswerer
from rag.citations import parse_cited_sentences
from rag.embeddings import HashEmbedding
from rag.errors import IndexEmptyError, InvalidInputError
from rag.pipeline import AskPipeline, validate_question
from rag.retrieval import HybridRetriever
from rag.sentence_vectors import SentenceVectors
from rag.settings import AnswerSettings, RetrieveSettings, Settings, VerifySettings
from rag.support import SupportChecker
from rag.types import REFUSAL
from test_answerability import FISH, RAIN, make_hits


@pytest.fixture(scope="module")
def embedder() -> HashEmbedding:
    return HashEmbedding()


def ranked(hits, p: dict[str, float], features: dict[str, dict[str, float]] | None = None):
    """Candidates of ``hits`` with hand-set probabilities (by sentence start), best first."""
    cands = candidates_from(hits)
    for c in cands:
        c.p = next((v for k, v in p.items() if c.text.startswith(k)), 0.01)
        c.features = {f: 0.0 for f in FEATURES} | next(
            (v for k, v in (features or {}).items() if c.text.startswith(k)), {})
    return sorted(cands, key=lambda c: -c.p)


def select(question: str, cands, embedder, **settings) -> list[str]:
    answerer = ExtractiveAnswerer(AnswerSettings(**settings), SentenceVectors(embedder))
    return [c.text for c in answerer.select(question, cands)]


def test_a_factoid_gets_one_sentence_when_the_runner_up_is_far_behind(embedder):
    hits = make_hits([("fish", FISH)])
    cands = ranked(hits, {"Portugal proposed": 0.9, "Spain rejected": 0.4, "Observers expect": 0.35})
    assert select("What quota did Portugal propose for sardines?", cands, embedder) == [
        "Portugal proposed a quota of four thousand tonnes for sardines in the northern zone."]


def test_a_close_runner_up_joins_the_best_sentence_and_no_third_does(embedder):
    hits = make_hits([("fish", FISH)])
    cands = ranked(hits, {"Portugal proposed": 0.9, "Spain rejected": 0.8, "Observers expect": 0.7})
    question = "What quota did Portugal propose for sardines?"
    assert select(question, cands, embedder) == [
        "Portugal proposed a quota of four thousand tonnes for sardines in the northern zone.",
        "Spain rejected the sardine quota because its fleets depend on the northern grounds."]
    assert len(select(question, cands, embedder, runner_up_share=1.01)) == 1  # turned off


def test_a_runner_up_that_restates_the_best_sentence_does_not_join(embedder):
    doc = ("Portugal proposed a quota of four thousand tonnes for sardines.\n"
           "Portugal proposed a sardine quota of four thousand tonnes, officials said.\n")
    cands = ranked(make_hits([("q", doc)]), {"Portugal proposed a quota": 0.9, "Portugal proposed a sardine": 0.8})
    assert select("What quota did Portugal propose for sardines?", cands, embedder) == [
        "Portugal proposed a quota of four thousand tonnes for sardines."]


def test_a_second_part_of_the_question_brings_its_own_sentence(embedder):
    hits = make_hits([("fish", FISH)])
    cands = ranked(hits, {"Portugal proposed": 0.9, "The talks will resume": 0.6, "Observers expect": 0.4})
    chosen = select("What quota did Portugal propose and where will the talks resume?", cands, embedder)
    assert chosen == ["Portugal proposed a quota of four thousand tonnes for sardines in the northern zone.",
                      "The talks will resume in Madrid next month after a technical review."]  # document order


def test_a_part_sentence_must_itself_be_likely_to_answer(embedder):
    hits = make_hits([("fish", FISH)])
    cands = ranked(hits, {"Portugal proposed": 0.9, "The talks will resume": 0.3})
    question = "What quota did Portugal propose and where will the talks resume?"
    assert len(select(question, cands, embedder)) == 1  # 0.3 < 0.5 × 0.9
    assert len(select(question, cands, embedder, relative_cutoff=0.3)) == 2


def test_each_answered_part_brings_its_best_sentence_whatever_its_share_of_the_whole(embedder):
    hits = make_hits([("fish", FISH)])
    question = "Who proposed a sardine quota, and when will the talks resume?"
    cands = ranked(hits, {"Portugal proposed": 0.9, "The talks will resume": 0.05})
    answered_part = Assessment(0.4, ranked(hits, {"The talks will resume": 0.5}), None, hits, threshold=0.3)
    doubtful_part = Assessment(0.2, ranked(hits, {"The talks will resume": 0.5}), None, hits, threshold=0.3)
    answerer = ExtractiveAnswerer(AnswerSettings(), SentenceVectors(embedder))
    assert [c.text[:15] for c in answerer.select(question, cands, [answered_part])] == [
        "Portugal propos", "The talks will "]
    assert len(answerer.select(question, cands, [doubtful_part])) == 1  # the part itself is not answered
    assert len(answerer.select(question, cands)) == 1  # 0.05 alone is far below half the best


def test_a_why_question_takes_the_stated_cause(embedder):
    hits = make_hits([("fish", FISH)])
    cause = {"Spain rejecte": {"cause_asked_and_stated": 1.0}}
    cands = ranked(hits, {"The fishing treaty": 0.9, "Spain rejected": 0.6}, cause)
    alone = {"runner_up_share": 1.01}  # the cause rule on its own
    chosen = select("Why did the fishing treaty negotiations stall?", cands, embedder, **alone)
    assert any(t.startswith("Spain rejected") for t in chosen) and len(chosen) == 2
    # the same sentences for a question that does not ask why: one sentence
    assert len(select("What did the fishing treaty negotiations do?", ranked(hits, {"The fishing treaty": 0.9,
                                                                                   "Spain rejected": 0.6}), embedder,
                      **alone)) == 1


def test_a_sentence_that_misses_the_questions_year_never_joins(embedder):
    hits = make_hits([("fish", FISH)])
    year = {"The talks wil": {"year_missing": 1.0}}
    cands = ranked(hits, {"Portugal proposed": 0.9, "The talks will resume": 0.8}, year)
    assert len(select("What quota did Portugal propose and where will the talks resume?", cands, embedder)) == 1


def test_max_sentences_and_restatements(embedder):
    dup = "Wire Copy\nPortugal proposed a quota of four thousand tonnes for sardines in the north.\n"
    hits = make_hits([("fish", FISH), ("wire", dup)])
    cands = ranked(hits, {"Portugal proposed a quota of four thousand tonnes for sardines in the n": 0.9,
                          "Portugal proposed a quota of four thousand tonnes for sardines in the no": 0.85,
                          "The talks will": 0.8, "Spain rejected": 0.8})
    question = "What did Portugal propose, who rejected the sardine quota, and where will the talks resume?"
    chosen = select(question, cands, embedder)
    assert sum(t.startswith("Portugal proposed") for t in chosen) == 1
    assert len(chosen) == 3
    assert len(select(question, cands, embedder, max_sentences=2)) == 2


def test_draft_marks_each_sentence_with_its_passage(embedder):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])
    question = "Which month was the wettest in forty years?"
    answerer = ExtractiveAnswerer(AnswerSettings(), SentenceVectors(embedder))

    judged = Assessment(0.9, ranked(hits, {"The national weather": 0.9}), None, hits)

    from rag.retrieval import Retrieval

    draft = answerer.draft(question, Retrieval(hits=hits, query_embedding=[]), judged)
    ((cited),) = draft.sentences
    assert cited.text.startswith("The national weather office recorded the wettest April")
    assert cited.text in hits[cited.markers[0] - 1].text  # the sentence as it stands in its passage
    assert [(c.text, c.markers) for c in parse_cited_sentences(draft.text)] == [(cited.text, cited.markers)]
    assert answerer.draft(question, Retrieval(hits=hits, query_embedding=[]), None).sentences == []


# ---- pipeline -------------------------------------------------------------------


def test_validate_question():
    assert validate_question("  What happened?  ", 100) == "What happened?"
    for bad in ["", "   \n\t ", None, 42, "Who met Xu \ud800?"]:  # a lone surrogate is not text
        with pytest.raises(InvalidInputError) as info:
            validate_question(bad, 100)
        assert info.value.details["field"] == "question"
    with pytest.raises(InvalidInputError) as info:
        validate_question("x" * 101, 100)
    assert info.value.details["limit"] == 100


class MemoryDense:
    """A dense index over HashEmbedding vectors: cosine ranking computed in numpy."""

    def __init__(self, embedder: HashEmbedding) -> None:
        self.embedder = embedder
        self.ids: list[str] = []
        self.rows: list[np.ndarray] = []

    def add(self, chunk_id: str, text: str) -> None:
        self.ids.append(chunk_id)
        self.rows.append(np.asarray(self.embedder.get_text_embedding(text), dtype=np.float32))

    def query(self, embedding: list[float], k: int) -> list[tuple[str, float]]:
        if not self.rows:
            return []
        sims = np.vstack(self.rows) @ np.asarray(embedding, dtype=np.float32)
        order = np.argsort(-sims)[:k]
        return [(self.ids[i], float(sims[i])) for i in order]


def coverage_model(threshold: float = 0.5) -> AnswerabilityModel:
    """A model that trusts a sentence holding most of the question's distinctive words, and nothing else."""
    return AnswerabilityModel.from_dict({
        "recommended_threshold": threshold,
        "sentence_model": {"features": list(FEATURES), "mean": [0.0] * len(FEATURES), "scale": [1.0] * len(FEATURES),
                           "coef": [10.0 if f == "coverage" else 0.0 for f in FEATURES], "intercept": -6.0},
        "answer_calibration": {"slope": 1.0, "intercept": 0.0}})


class ScriptedChat:
    """A chat answerer that cites passage 1 with its first sentence, and counts its calls."""

    mode = "openai"

    def __init__(self) -> None:
        self.calls = 0

    def draft(self, question, retrieval, assessment=None) -> Draft:
        self.calls += 1
        first = candidates_from(retrieval.hits[:1])[0].text
        return Draft.of_text(f"{first} [1]", retrieval.hits)


def build_pipeline(tmp_path, embedder, chat=None, **answer):
    store = DocStore(tmp_path / "d.sqlite3", embedder.model_id)
    dense = MemoryDense(embedder)
    settings = Settings(answer=AnswerSettings(**answer), max_question_chars=2000)  # init args beat RAG_* env vars
    vectors = SentenceVectors(embedder)
    chat = chat or ScriptedChat()

    def ingest(doc_id: str, text: str) -> None:
        chunks = chunk_text(doc_id, text, 40, 1)
        store.replace_document(doc_id=doc_id, source_root="t", title=doc_id, date=None, url=None,
                               content_hash=text_hash(text), text=text, chunks=chunks)
        for c in chunks:
            dense.add(c.chunk_id, c.text)

    retriever = HybridRetriever(dense, store, embedder, RetrieveSettings())
    pipe = AskPipeline(settings, retriever,
                       {"extractive": lambda: ExtractiveAnswerer(settings.answer, vectors), "openai": lambda: chat},
                       SupportChecker(VerifySettings(), vectors), is_empty=lambda: store.chunk_count() == 0,
                       assessor=Assessor(vectors, store, coverage_model()))
    pipe.ingest, pipe.store, pipe.chat = ingest, store, chat
    return pipe


@pytest.fixture
def pipeline(tmp_path, embedder):
    pipe = build_pipeline(tmp_path, embedder)
    yield pipe
    pipe.store.close()


def test_pipeline_refuses_when_index_is_empty(pipeline):
    with pytest.raises(IndexEmptyError):
        pipeline.ask("What quota did Portugal propose?")


def test_pipeline_validates_input(pipeline):
    pipeline.ingest("fish", FISH)
    for bad in ["", "   ", "x" * (pipeline.settings.max_question_chars + 1)]:
        with pytest.raises(InvalidInputError):
            pipeline.ask(bad)
    with pytest.raises(InvalidInputError):
        pipeline.ask("What quota?", top_k=0)
    with pytest.raises(InvalidInputError):
        pipeline.ask("What quota?", mode="nonsense")


def test_pipeline_refusal_says_why_and_cites_nothing(pipeline):
    pipeline.ingest("fish", FISH)
    pipeline.ingest("rain", RAIN)
    answer = pipeline.ask("How many warships escorted the sardine fleets to Lisbon?")
    assert answer.answerable is False
    assert answer.answer.startswith(REFUSAL)
    assert "“warships”" in answer.answer and "say nothing about" in answer.answer
    assert answer.citations == [] and answer.sentences == []
    assert answer.confidence is not None and answer.confidence < 0.5
    assert answer.mode == "extractive"


def test_pipeline_answers_with_exact_citations_and_its_confidence(pipeline):
    pipeline.ingest("fish", FISH)
    pipeline.ingest("rain", RAIN)
    answer = pipeline.ask("  What quota did Portugal propose for sardines?  ")
    assert answer.question == "What quota did Portugal propose for sardines?"
    assert answer.answerable is True and answer.confidence >= 0.5
    assert answer.answer.startswith("Portugal proposed a quota of four thousand tonnes")
    assert len(answer.citations) == 1
    texts = {"fish": FISH, "rain": RAIN}
    for c in answer.citations:
        assert texts[c.doc_id][c.start:c.end] == c.quote
    assert {n for s in answer.sentences for n in s.citations} == {c.n for c in answer.citations}


def test_the_threshold_setting_decides(tmp_path, embedder):
    strict = build_pipeline(tmp_path / "a", embedder, min_confidence=1.0)
    loose = build_pipeline(tmp_path / "b", embedder, min_confidence=0.0)
    for pipe in (strict, loose):
        pipe.ingest("fish", FISH)
    question = "What quota did Portugal propose for sardines?"
    assert strict.ask(question).answerable is False
    assert loose.ask(question).answerable is True
    assert strict.min_confidence == 1.0
    assert build_pipeline(tmp_path / "c", embedder).min_confidence == 0.5  # unset: the model's recommendation


def test_the_chat_model_is_not_called_below_the_threshold(tmp_path, embedder):
    gated = build_pipeline(tmp_path / "a", embedder)
    ungated = build_pipeline(tmp_path / "b", embedder, gate_chat_model=False)
    for pipe in (gated, ungated):
        pipe.ingest("fish", FISH)
    weak = "How many warships escorted the sardine fleets to Lisbon?"
    answer = gated.ask(weak, mode="openai")
    assert gated.chat.calls == 0 and answer.answerable is False and answer.answer.startswith(REFUSAL)
    ungated.ask(weak, mode="openai")
    assert ungated.chat.calls == 1  # the setting turns the gate off
    good = gated.ask("What quota did Portugal propose for sardines?", mode="openai")
    assert gated.chat.calls == 1 and good.answerable and good.confidence >= 0.5


ASKS_NUMBER = ("How many delegations attended the fishing treaty negotiations?", {"type_expected": 1.0},
               {"type_expected": 1.0, "type_present": 1.0, "type_near": 1.0})
ASKS_CAUSE = ("Why did the sardine talks in Lisbon break down?", {"cause_asked": 1.0},
              {"cause_asked": 1.0, "cause_asked_and_stated": 1.0})


@pytest.mark.parametrize("question, asks, holds", [ASKS_NUMBER, ASKS_CAUSE], ids=["number", "why-cause"])
def test_a_sentence_with_the_kind_of_answer_asked_for_answers_in_place_of_a_best_one_without_it(
        embedder, question, asks, holds):
    hits = make_hits([("fish", FISH)])
    features = {"Spain rejected": asks, "The fishing treaty": holds, "Portugal proposed": holds}
    # the best sentence holds no such answer; the next one does, however low its probability, and answers alone
    cands = ranked(hits, {"Spain rejected": 0.9, "The fishing treaty": 0.02}, features)
    assert [c[:18] for c in select(question, cands, embedder)] == ["The fishing treaty"]
    # a best sentence that is the best of a part of the question stays beside it
    answerer = ExtractiveAnswerer(AnswerSettings(), SentenceVectors(embedder))
    part = Assessment(0.9, cands, None, hits, threshold=0.3)
    assert [c.text[:18] for c in answerer.select(question, cands, [part])] == ["The fishing treaty",
                                                                              "Spain rejected the"]
    # only the next TYPED_LOOKAHEAD sentences are looked at
    cands = ranked(hits, {"Spain rejected": 0.9, "Observers": 0.3, "The talks": 0.2, "The fishing treaty": 0.1},
                   features)
    assert select(question, cands, embedder) == [cands[0].text]
    # the best sentence holds one already: it stands alone
    cands = ranked(hits, {"Portugal proposed": 0.9, "The fishing treaty": 0.02}, features)
    assert select(question, cands, embedder) == [cands[0].text]
    # the question asks for no kind of answer: nothing joins
    plain = {k: {f: v for f, v in holds.items() if f not in asks} for k in features}
    cands = ranked(hits, {"Spain rejected": 0.9, "The fishing treaty": 0.02}, plain)
    assert select(question, cands, embedder) == [cands[0].text]


SIEGE = ("The siege of the old fort began on 3 March 1820 when the rebels took the gatehouse. "
         "The rebels held out for almost a month before the fort fell. "
         "Visitors can tour the fort and its gatehouse today.")


def test_how_long_wants_a_length_of_time_not_the_date_the_best_sentence_holds(embedder):
    hits = make_hits([("siege", SIEGE)])
    number = {"type_expected": 1.0, "type_present": 1.0, "type_near": 1.0}  # 3, 1820: a number, not a duration
    features = {"The siege": number, "The rebels": {"type_expected": 1.0}, "Visitors": {"type_expected": 1.0}}
    cands = ranked(hits, {"The siege": 0.9, "Visitors": 0.3, "The rebels": 0.1}, features)
    assert [c[:10] for c in select("How long did the rebels hold out in the fort?", cands, embedder)] == [
        "The rebels"]
    # "how long ago" asks for a date, which the best sentence holds: it stands alone
    assert select("How long ago did the siege of the fort begin?", cands, embedder) == [cands[0].text]


def test_how_long_is_asked_and_stated_in_time_or_distance():
    assert asks_how_long("How long did the Austin–Wei Fenghe phone call last?")
    assert asks_how_long("How long is the river?") and not asks_how_long("How long ago did the war end?")
    assert not asks_how_long("When did the war end?")
    for stated in ("the call, which lasted about 45 minutes", "held out for almost a month", "a 45-minute call",
                   "the river is 1,047 km long", "for two years"):
        assert states_how_long(stated), stated
    for not_stated in ("on 19 April 1943", "twelve delegations attended", "in March"):
        assert not states_how_long(not_stated), not_stated


def test_a_number_far_from_the_questions_words_does_not_join(embedder):
    question, asks, holds = ASKS_NUMBER
    hits = make_hits([("fish", FISH)])
    far = holds | {"type_near": 0.0}  # a number, but not beside anything the question asks about
    cands = ranked(hits, {"Spain rejected": 0.9, "The fishing treaty": 0.02},
                   {"Spain rejected": asks, "The fishing treaty": far})
    assert select(question, cands, embedder) == [cands[0].text]


def test_the_lookahead_keeps_to_the_questions_year_only_where_some_passage_states_it(embedder):
    hits = make_hits([("fish", FISH)])
    question = "Why did the sardine talks in Lisbon break down in 2019?"
    undated = {start: {"cause_asked": 1.0, "year_missing": 1.0}
               for start in ("The fishing treaty", "Portugal proposed", "The talks", "Observers")}
    undated["Spain rejected"] = {"cause_asked": 1.0, "cause_asked_and_stated": 1.0, "year_missing": 1.0}
    p = {"The fishing treaty": 0.9, "Spain rejected": 0.03}
    # no passage speaks of 2019 (undated articles): the year cannot tell the sentences apart, the cause answers
    assert [c[:14] for c in select(question, ranked(hits, p, undated), embedder)] == ["Spain rejected"]
    # the best sentence's passage does, the cause's does not: the cause is from another time
    dated = undated | {"The fishing treaty": {"cause_asked": 1.0}}
    assert [c[:14] for c in select(question, ranked(hits, p, dated), embedder)] == ["The fishing tr"]
