"""The offline extractive answerer, and the ask pipeline's refusal path."""

from __future__ import annotations

import numpy as np
import pytest

from index.chunking import chunk_text, text_hash
from index.docstore import DocStore
from rag.answering.extractive import ExtractiveAnswerer, candidates_from, is_sentence, question_coverage
from rag.citations import parse_cited_sentences
from rag.embeddings import HashEmbedding
from rag.errors import IndexEmptyError, InvalidInputError
from rag.pipeline import AskPipeline, validate_question
from rag.retrieval import HybridRetriever, Retrieval
from rag.sentence_vectors import SentenceVectors
from rag.settings import AnswerSettings, RetrieveSettings, Settings, VerifySettings
from rag.support import SupportChecker
from rag.text import content_terms, stem
from rag.types import REFUSAL, Hit

FISH = (
    "Harbour Talks Open In Lisbon\n"
    "The fishing treaty negotiations opened in Lisbon on Tuesday with twelve delegations attending. "
    "Portugal proposed a quota of four thousand tonnes for sardines in the northern zone. "
    "Spain rejected the sardine quota because its fleets depend on the northern grounds. "
    "The talks will resume in Madrid next month after a technical review. "
    "Observers expect a compromise on sardine quotas before the winter season begins.\n"
)
RAIN = (
    "Rainfall Records Broken\n"
    "The national weather office recorded the wettest April in forty years across the southern provinces. "
    "Farmers reported flooded fields and delayed planting of maize and beans.\n"
)


class CountingStats:
    """Corpus statistics really counted over a list of chunk texts (stemmed, like the FTS index)."""

    def __init__(self, texts: list[str]) -> None:
        self.term_sets = [set(content_terms(t)) for t in texts]

    def chunk_count(self) -> int:
        return len(self.term_sets)

    def approximate_chunk_count(self) -> int:
        return len(self.term_sets)

    def term_document_counts(self, terms, cap: int = 1000) -> dict[str, int]:
        return {t: min(cap, sum(stem(t) in s for s in self.term_sets)) for t in dict.fromkeys(terms)}


def make_hits(docs: list[tuple[str, str]], size: int = 40) -> list[Hit]:
    hits = []
    for doc_id, text in docs:
        for c in chunk_text(doc_id, text, size, 1):
            hits.append(Hit(chunk_id=c.chunk_id, doc_id=doc_id, title=doc_id, start=c.start, end=c.end,
                            text=c.text, score=1.0))
    return hits


@pytest.fixture(scope="module")
def embedder() -> HashEmbedding:
    return HashEmbedding()


def answerer_for(hits: list[Hit], embedder, **settings) -> ExtractiveAnswerer:
    return ExtractiveAnswerer(AnswerSettings(**settings), SentenceVectors(embedder), CountingStats([h.text for h in hits]))


def draft(answerer: ExtractiveAnswerer, question: str, hits: list[Hit], embedder) -> str:
    return answerer.draft(question, Retrieval(hits=hits, query_embedding=embedder.get_query_embedding(question))).text


def marked_sentences(text: str) -> list[tuple[str, list[int]]]:
    return [(c.text, c.markers) for c in parse_cited_sentences(text)]


def test_counting_stats_really_count():
    stats = CountingStats(["Sardines were caught.", "A sardine quota.", "Rain fell."])
    assert stats.chunk_count() == 3
    assert stats.term_document_counts(["sardines", "rain", "zebra"]) == {"sardines": 2, "rain": 1, "zebra": 0}


@pytest.mark.parametrize("question,expected", [
    ("What quota did Portugal propose for sardines?",
     "Portugal proposed a quota of four thousand tonnes for sardines in the northern zone."),
    ("Why did Spain reject the sardine quota?",
     "Spain rejected the sardine quota because its fleets depend on the northern grounds."),
    ("Where will the talks resume?", "The talks will resume in Madrid next month after a technical review."),
    ("Which month was the wettest in forty years?",
     "The national weather office recorded the wettest April in forty years across the southern provinces."),
])
def test_answer_is_the_matching_sentence_with_its_passage_marker(embedder, question, expected):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])
    text = draft(answerer_for(hits, embedder, max_sentences=1), question, hits, embedder)
    ((sentence, markers),) = marked_sentences(text)
    assert sentence == expected
    assert len(markers) == 1
    assert expected in hits[markers[0] - 1].text  # the marker names a passage holding the sentence


def test_markers_number_the_passages_that_hold_each_sentence(embedder):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])
    text = draft(answerer_for(hits, embedder, max_sentences=3, relative_cutoff=0.0),
                 "Why did Spain reject the sardine quota proposed by Portugal?", hits, embedder)
    result = marked_sentences(text)
    assert len(result) == 3
    for sentence, (n,) in result:
        assert sentence in hits[n - 1].text
        assert is_sentence(sentence)


@pytest.mark.parametrize("max_sentences", [1, 2, 4])
def test_max_sentences_respected(embedder, max_sentences):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])
    answerer = answerer_for(hits, embedder, max_sentences=max_sentences, relative_cutoff=0.0)
    text = draft(answerer, "What did Portugal and Spain say about the sardine quota talks?", hits, embedder)
    assert len(marked_sentences(text)) == max_sentences


def test_relative_cutoff_limits_weak_sentences(embedder):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])
    question = "What quota did Portugal propose for sardines?"
    loose = draft(answerer_for(hits, embedder, max_sentences=5, relative_cutoff=0.0), question, hits, embedder)
    strict = draft(answerer_for(hits, embedder, max_sentences=5, relative_cutoff=0.99), question, hits, embedder)
    assert len(marked_sentences(strict)) == 1
    assert len(marked_sentences(loose)) == 5


def test_near_duplicate_sentences_not_both_chosen(embedder):
    dup = "Wire Copy\nSpain rejected the sardine quota because its fleets depend on the northern grounds.\n"
    hits = make_hits([("fish", FISH), ("wire", dup)])
    assert len(candidates_from(hits)) == 6  # the duplicate is a candidate of its own (another document)
    answerer = answerer_for(hits, embedder, max_sentences=6, relative_cutoff=0.0)
    text = draft(answerer, "Why did Spain reject the sardine quota?", hits, embedder)
    sentences = [s for s, _ in marked_sentences(text)]
    assert sentences.count("Spain rejected the sardine quota because its fleets depend on the northern grounds.") == 1
    assert len(sentences) == 5  # every candidate but the duplicate


def test_chosen_sentences_ordered_by_passage_then_position(embedder):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])
    text = draft(answerer_for(hits, embedder, max_sentences=4, relative_cutoff=0.0),
                 "What happened at the sardine quota talks in Lisbon?", hits, embedder)
    positions = [FISH.find(s) for s, _ in marked_sentences(text)]
    fish_positions = [p for p in positions if p >= 0]
    assert fish_positions == sorted(fish_positions)


def test_absent_topic_is_refused_by_coverage(embedder):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])
    answerer = answerer_for(hits, embedder)
    question = "Who won the football cup final?"
    assert question_coverage(question, hits, answerer.stats) == 0.0
    result = answerer.draft(question, Retrieval(hits=hits, query_embedding=embedder.get_query_embedding(question)))
    assert result.text == ""
    assert result.hits == hits


def test_partly_covered_question_is_refused_below_min_coverage(embedder):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])
    answerer = answerer_for(hits, embedder)
    question = "How many millimetres of snow fell on Helsinki during the blizzard in April?"
    coverage = question_coverage(question, hits, answerer.stats)
    assert 0.0 < coverage < AnswerSettings().min_coverage
    assert draft(answerer, question, hits, embedder) == ""
    # the same question with coverage switched off is answered (so the refusal above came from coverage)
    assert draft(answerer_for(hits, embedder, min_coverage=0.0, min_evidence=0.0), question, hits, embedder) != ""


def test_no_hits_gives_empty_draft(embedder):
    answerer = answerer_for([], embedder)
    assert draft(answerer, "What quota did Portugal propose?", [], embedder) == ""


def test_min_evidence_refuses_weak_best_sentence(embedder):
    hits = make_hits([("fish", FISH)])
    question = "What quota did Portugal propose for sardines?"
    assert draft(answerer_for(hits, embedder), question, hits, embedder) != ""
    assert draft(answerer_for(hits, embedder, min_evidence=1.0), question, hits, embedder) == ""


@pytest.mark.parametrize("text,expected", [
    ("Harbour Talks Open In Lisbon", False),            # headline: no closing punctuation
    ("Talks open in Lisbon today", False),
    ("Talks open today.", False),                       # too few words
    ("Photo: AP 2023.", False),
    ("Talks open in Lisbon today.", True),
    ("Did the talks open in Lisbon?", True),
    ("“The talks opened in Lisbon,” he said.", True),
    ("The talks opened in Lisbon (officially.)", True),
])
def test_is_sentence(text, expected):
    assert is_sentence(text) is expected


def test_candidates_exclude_headlines_and_keep_document_offsets():
    hits = make_hits([("fish", FISH)])
    cands = candidates_from(hits)
    assert all(c.text != "Harbour Talks Open In Lisbon" for c in cands)
    for c in cands:
        assert FISH[c.start:c.start + len(c.text)] == c.text
    # overlapping chunks do not yield the same sentence twice
    assert len({(c.doc_id, c.start) for c in cands}) == len(cands)
    assert len(cands) == 5


def test_why_question_feedback_hop_adds_explaining_passage(embedder):
    hits = make_hits([("fish", FISH)])[1:]  # two chunks retrieved: room for one more passage (len + len // 2)
    assert len(hits) == 2 and "Spain rejected" in hits[0].text
    extra = make_hits([("cause", "Fleet Report\nThe northern grounds hold most of the sardine stock, "
                                 "so the Spanish fleets depend on them.\n")])
    calls = []

    def retrieve(query: str, k: int) -> Retrieval:
        calls.append((query, k))
        return Retrieval(hits=hits[:1] + extra, query_embedding=embedder.get_query_embedding(query))

    answerer = ExtractiveAnswerer(AnswerSettings(), SentenceVectors(embedder),
                                  CountingStats([h.text for h in hits + extra]), retrieve=retrieve)
    question = "Why did Spain reject the sardine quota?"
    result = answerer.draft(question, Retrieval(hits=hits, query_embedding=embedder.get_query_embedding(question)))
    # the hop's query is the best sentence (the event), asking for as many passages as were retrieved
    assert calls == [("Spain rejected the sardine quota because its fleets depend on the northern grounds.", 2)]
    # known passages are not repeated; the new one is appended after the original ones
    assert [h.chunk_id for h in result.hits] == [h.chunk_id for h in hits] + [extra[0].chunk_id]
    for sentence, markers in marked_sentences(result.text):
        assert all(sentence in result.hits[n - 1].text for n in markers)


def test_non_why_question_makes_no_hop(embedder):
    hits = make_hits([("fish", FISH)])
    calls = []
    answerer = ExtractiveAnswerer(AnswerSettings(), SentenceVectors(embedder), CountingStats([h.text for h in hits]),
                                  retrieve=lambda q, k: calls.append(q) or Retrieval(hits=[], query_embedding=[]))
    question = "Where will the talks resume?"
    answerer.draft(question, Retrieval(hits=hits, query_embedding=embedder.get_query_embedding(question)))
    assert calls == []


# ---- pipeline ---------------------------------------------------------------


def test_validate_question():
    assert validate_question("  What happened?  ", 100) == "What happened?"
    for bad in ["", "   \n\t ", None, 42]:
        with pytest.raises(InvalidInputError) as info:
            validate_question(bad, 100)
        assert info.value.details["field"] == "question"
    with pytest.raises(InvalidInputError) as info:
        validate_question("x" * 101, 100)
    assert info.value.details["limit"] == 100
    assert validate_question("x" * 100, 100) == "x" * 100


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


@pytest.fixture
def pipeline(tmp_path, embedder):
    store = DocStore(tmp_path / "d.sqlite3", embedder.model_id)
    dense = MemoryDense(embedder)
    settings = Settings(answer=AnswerSettings(), max_question_chars=2000)  # init args beat RAG_* env vars
    vectors = SentenceVectors(embedder)

    def ingest(doc_id: str, text: str) -> None:
        chunks = chunk_text(doc_id, text, 40, 1)
        store.replace_document(doc_id=doc_id, source_root="t", title=doc_id, date=None, url=None,
                               content_hash=text_hash(text), text=text, chunks=chunks)
        for c in chunks:
            dense.add(c.chunk_id, c.text)

    retriever = HybridRetriever(dense, store, embedder, RetrieveSettings())
    pipe = AskPipeline(
        settings, retriever,
        {"extractive": lambda: ExtractiveAnswerer(settings.answer, vectors, store, retriever.retrieve)},
        SupportChecker(VerifySettings(), vectors), is_empty=lambda: store.chunk_count() == 0)
    pipe.ingest = ingest
    pipe.store = store
    yield pipe
    store.close()


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


def test_pipeline_refusal_for_absent_topic(pipeline):
    pipeline.ingest("fish", FISH)
    pipeline.ingest("rain", RAIN)
    answer = pipeline.ask("Who won the football cup final?")
    assert answer.answerable is False
    assert answer.answer == REFUSAL
    assert answer.citations == [] and answer.sentences == []
    assert answer.mode == "extractive"


def test_pipeline_answers_with_exact_citations(pipeline):
    pipeline.ingest("fish", FISH)
    pipeline.ingest("rain", RAIN)
    answer = pipeline.ask("  What quota did Portugal propose for sardines?  ")
    assert answer.question == "What quota did Portugal propose for sardines?"
    assert answer.answerable is True
    assert "Portugal proposed a quota of four thousand tonnes" in answer.answer
    assert answer.citations
    texts = {"fish": FISH, "rain": RAIN}
    for c in answer.citations:
        assert texts[c.doc_id][c.start:c.end] == c.quote
    cited = {n for s in answer.sentences for n in s.citations}
    assert cited == {c.n for c in answer.citations}
    assert answer.timings_ms.total >= 0


# ---- why-questions: the explanation comes from the event's own article -----------------------

HARBOUR = ("harbour.txt",
           "The council rejected the harbour treaty in May after a long debate.\n\n"
           "Weather in the region was mild that spring, with little rain at all.\n\n"
           "The council rejected the harbour treaty because the harbour fees in the treaty had doubled.\n")
PARADE = ("parade.txt", "Because of heavy rain the council cancelled the treaty parade in the harbour.\n")


def _why_setup(embedder, retrieved_chunks: int):
    all_hits = make_hits([HARBOUR, PARADE], size=20)
    harbour_chunks = [h for h in all_hits if h.doc_id == "harbour.txt"]
    retrieved = harbour_chunks[:retrieved_chunks] + [h for h in all_hits if h.doc_id == "parade.txt"]
    answerer = ExtractiveAnswerer(AnswerSettings(min_coverage=0.0, min_evidence=0.0), SentenceVectors(embedder),
                                  CountingStats([h.text for h in all_hits]),
                                  document_passages=lambda doc_id: [h for h in all_hits if h.doc_id == doc_id])
    return answerer, retrieved


def test_why_answer_adds_the_cause_from_the_events_article_even_unretrieved(embedder):
    answerer, retrieved = _why_setup(embedder, retrieved_chunks=1)
    assert not any("fees" in h.text for h in retrieved)  # the cause was not retrieved
    question = "Why did the council reject the harbour treaty?"
    result = answerer.draft(question, Retrieval(hits=retrieved, query_embedding=embedder.get_query_embedding(question)))
    assert "harbour fees in the treaty had doubled" in result.text
    cause = next(c for c in parse_cited_sentences(result.text) if "fees" in c.text)
    cited = result.hits[cause.markers[0] - 1]
    assert cited.doc_id == "harbour.txt" and "fees" in cited.text  # the added passage is among the hits


def test_an_explanation_never_comes_from_another_article(embedder):
    answerer, retrieved = _why_setup(embedder, retrieved_chunks=3)
    question = "Why did the council reject the harbour treaty?"
    ranked = answerer.score(question, retrieved, embedder.get_query_embedding(question))
    event = next(c for c in ranked if c.doc_id == "harbour.txt" and "May" in c.text)
    fees = next(c for c in ranked if "fees" in c.text)
    cause, _ = answerer.explanation(question, event, retrieved, chosen=[fees])
    assert cause is None  # the harbour article has no other cause; the parade article's "because" is not one


def test_a_plain_question_gets_no_explanation_slot(embedder):
    answerer, retrieved = _why_setup(embedder, retrieved_chunks=1)
    question = "When did the council reject the harbour treaty?"
    result = answerer.draft(question, Retrieval(hits=retrieved, query_embedding=embedder.get_query_embedding(question)))
    assert "fees" not in result.text and len(result.hits) == len(retrieved)


def test_a_restated_sentence_is_not_chosen_twice(embedder):
    text = ("The report said that the board remains cautious because costs rose sharply.\n\n"
            "The report said, citing several insiders, that the board is cautious because costs rose sharply.\n")
    hits = make_hits([("board.txt", text)], size=60)
    result = draft(answerer_for(hits, embedder, min_coverage=0.0, min_evidence=0.0),
                   "Why is the board cautious about costs?", hits, embedder)
    assert len(parse_cited_sentences(result)) == 1
