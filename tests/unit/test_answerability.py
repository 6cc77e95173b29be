"""The answerability judgement: candidates, features, the fitted model, refusal reasons."""

from __future__ import annotations

import json

import numpy as np
import pytest

from index.chunking import chunk_text
from rag.answerability import Assessor, explain_refusal
from rag.answerability.features import FEATURES, candidates_from, featurize
from rag.answerability.model import MODEL_PATH, AnswerabilityModel
from rag.answerability.question import (QuestionTerms, expected_type, named_words, question_names, question_parts,
                                        value_swapped)
from rag.embeddings import HashEmbedding
from rag.retrieval import Retrieval
from rag.sentence_vectors import SentenceVectors
from rag.text import content_terms, is_sentence, stem
from rag.types import Hit

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
    "Farmers reported flooded fields and delayed planting of maize and beans in 2019.\n"
)


class CountingStats:
    """Corpus statistics really counted over a list of chunk texts (stemmed, like the FTS index)."""

    def __init__(self, texts: list[str]) -> None:
        self.term_sets = [set(content_terms(t)) for t in texts]

    def approximate_chunk_count(self) -> int:
        return len(self.term_sets)

    def term_document_counts(self, terms, cap: int = 1000) -> dict[str, int]:
        return {t: min(cap, sum(stem(t) in s for s in self.term_sets)) for t in dict.fromkeys(terms)}


def make_hits(docs: list[tuple[str, str]], size: int = 40) -> list[Hit]:
    hits = []
    for doc_id, text in docs:
        for c in chunk_text(doc_id, text, size, 1):
            hits.append(Hit(chunk_id=c.chunk_id, doc_id=doc_id, title=doc_id, start=c.start, end=c.end,
                            text=c.text, score=1.0, dense_rank=len(hits) + 1, keyword_rank=len(hits) + 1))
    return hits


@pytest.fixture(scope="module")
def embedder() -> HashEmbedding:
    return HashEmbedding()


def features_for(question: str, hits: list[Hit], embedder) -> dict[str, dict[str, float]]:
    """Each candidate sentence's features, by sentence text."""
    candidates = candidates_from(hits)
    featurize(question, Retrieval(hits=hits, query_embedding=embedder.get_query_embedding(question)), candidates,
              SentenceVectors(embedder), CountingStats([h.text for h in hits]))
    return {c.text: c.features for c in candidates}


def test_counting_stats_really_count():
    stats = CountingStats(["Sardines were caught.", "A sardine quota.", "Rain fell."])
    assert stats.approximate_chunk_count() == 3
    assert stats.term_document_counts(["sardines", "rain", "zebra"]) == {"sardines": 2, "rain": 1, "zebra": 0}


@pytest.mark.parametrize("text,expected", [
    ("Harbour Talks Open In Lisbon", False),            # headline: no closing punctuation
    ("Talks open in Lisbon today", False),
    ("Talks open today.", False),                       # too few words
    ("Photo: AP 2023.", False),
    ("Talks open in Lisbon today.", True),
    ("Did the talks open in Lisbon?", True),
    ("“The talks opened in Lisbon,” he said.", True),
])
def test_is_sentence(text, expected):
    assert is_sentence(text) is expected


def test_candidates_exclude_headlines_and_keep_document_offsets():
    hits = make_hits([("fish", FISH)])
    cands = candidates_from(hits)
    assert all(c.text != "Harbour Talks Open In Lisbon" for c in cands)
    for c in cands:
        assert FISH[c.start:c.end] == c.text
    assert len({(c.doc_id, c.start) for c in cands}) == len(cands) == 5  # overlapping chunks: each sentence once


@pytest.mark.parametrize("question,kind", [
    ("How many delegations attended?", "count"),
    ("How much did the quota cost?", "count"),
    ("How long did the talks last?", "number"),
    ("When did the talks open?", "date"),
    ("In what year was the record broken?", "date"),
    ("Who proposed the quota?", "name"),
    ("Where will the talks resume?", "name"),
    ("Which country rejected the quota?", "name"),
    ("Why did Spain reject the quota?", None),
    ("What did Portugal propose?", None),
])
def test_expected_answer_type(question, kind):
    assert expected_type(question) == kind


def test_question_names_are_capitalised_words_past_the_first_and_numbers():
    assert question_names("Who met Xu Qiliang in Beijing in 2018?") == [stem("xu"), stem("qiliang"), stem("beijing"),
                                                                        "2018"]
    assert question_names("What did they say?") == []


def test_named_words_leave_out_the_first_word_acronyms_and_numbers():
    assert named_words("Who sent the US destroyer through the Taiwan Strait in 2023?") == {
        stem("taiwan"): "Taiwan", stem("strait"): "Strait"}
    assert named_words("According to the AAA, what did Portugal's minister say?") == {stem("portugal"): "Portugal"}


def test_things_the_question_names_that_no_document_mentions(embedder):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])

    def unknown_names(question: str) -> float:
        return next(iter(features_for(question, hits, embedder).values()))["unknown_names"]

    assert unknown_names("What did Portugal say about the Philippines?") == 0.5  # Portugal is mentioned
    assert unknown_names("What quota did Portugal propose in Lisbon?") == 0.0
    assert unknown_names("What quota did Portugall propose in Lisbon?") == 0.0  # a typo of a passage's word
    assert unknown_names("What quota did NATO propose in 2031?") == 0.0  # acronyms and numbers are left out


def test_features_prefer_the_sentence_that_holds_the_questions_words(embedder):
    f = features_for("What quota did Portugal propose for sardines?", make_hits([("fish", FISH)]), embedder)
    best = f["Portugal proposed a quota of four thousand tonnes for sardines in the northern zone."]
    other = f["The talks will resume in Madrid next month after a technical review."]
    assert best["coverage"] > 0.9 and other["coverage"] == 0.0
    assert best["coverage_gap"] == 0.0 and other["coverage_gap"] > 0.9
    assert best["cosine"] > other["cosine"] and best["cosine_gap"] == 0.0
    assert best["names_missing"] == 0.0 and other["names_missing"] == 1.0  # "Portugal"
    assert set(best) == set(FEATURES)


def test_a_name_typed_without_its_accents_is_found_in_the_sentence(embedder):
    hits = make_hits([("old", "Kraków was the royal capital until 1596."),
                      ("new", "The king moved his court and the capital to Warsaw.")])
    f = features_for("Until when was Krakow the capital?", hits, embedder)
    holds, lacks = f["Kraków was the royal capital until 1596."], f["The king moved his court and the capital to Warsaw."]
    assert holds["names_missing"] == 0.0 and lacks["names_missing"] == 1.0
    assert holds["coverage"] == 1.0 and holds["names_missing_everywhere"] == 0.0


def test_expected_type_must_appear_beyond_the_questions_own_words(embedder):
    hits = make_hits([("fish", FISH)])
    f = features_for("How many delegations attended the fishing treaty negotiations?", hits, embedder)
    assert f["The fishing treaty negotiations opened in Lisbon on Tuesday with twelve delegations attending."][
        "type_present"] == 1.0  # "twelve"
    assert f["The talks will resume in Madrid next month after a technical review."]["type_present"] == 0.0
    doc = ("The sardine quota was rejected by the northern fleets after a long night.\n"
           "The sardine quota was rejected at the meeting, Spain said on Tuesday.\n")
    f = features_for("Who rejected the sardine quota?", make_hits([("q", doc)]), embedder)
    assert f["The sardine quota was rejected by the northern fleets after a long night."]["type_present"] == 0.0
    assert f["The sardine quota was rejected at the meeting, Spain said on Tuesday."]["type_present"] == 1.0


def test_a_year_is_not_a_count(embedder):
    doc = ("The fishing treaty has been in force since 2018 in the northern zone.\n"
           "The fishing treaty was signed by twelve delegations in the northern zone.\n")
    f = features_for("How many delegations signed the fishing treaty?", make_hits([("fish", doc)]), embedder)
    dated = f["The fishing treaty has been in force since 2018 in the northern zone."]
    counted = f["The fishing treaty was signed by twelve delegations in the northern zone."]
    assert dated["type_present"] == dated["type_near"] == 0.0  # "how many" asks for a count; 2018 is a year
    assert counted["type_present"] == counted["type_near"] == 1.0
    f = features_for("How long has the fishing treaty been in force?", make_hits([("fish", doc)]), embedder)
    assert f["The fishing treaty has been in force since 2018 in the northern zone."]["type_present"] == 1.0


def test_question_words_missing_from_every_passage_and_from_the_index(embedder):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])
    asked = features_for("How many warships did Portugal send to Lisbon?", hits, embedder)
    plain = features_for("What quota did Portugal propose for sardines?", hits, embedder)
    one = next(iter(asked.values()))
    assert one["rare_missing"] > 0 and one["unknown_to_index"] > 0 and one["max_missing_idf"] > 0
    assert all(v["rare_missing"] == 0 and v["unknown_to_index"] == 0 for v in plain.values())


def test_year_named_by_the_question_must_be_in_the_passage(embedder):
    hits = make_hits([("fish", FISH), ("rain", RAIN)], size=200)
    f = features_for("What did farmers plant late in 2019?", hits, embedder)
    assert f["Farmers reported flooded fields and delayed planting of maize and beans in 2019."]["year_missing"] == 0
    assert f["The talks will resume in Madrid next month after a technical review."]["year_missing"] == 1.0
    f = features_for("What did farmers plant late?", hits, embedder)
    assert all(v["year_missing"] == 0 for v in f.values())


def dated(hits: list[Hit], doc_id: str, date: str) -> list[Hit]:
    return [h.model_copy(update={"date": date}) if h.doc_id == doc_id else h for h in hits]


def test_an_article_cannot_answer_for_a_year_after_its_own_date(embedder):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])
    stats = CountingStats([h.text for h in hits])
    assessor = Assessor(SentenceVectors(embedder), stats, _model({"coverage": 6.0}, -3.0))

    def judged(question: str, hits: list[Hit]):
        return assessor.assess(question, Retrieval(hits, embedder.get_query_embedding(question)))

    question = "What sardine quota did Portugal propose in 2024?"
    assert judged(question, hits).candidates[0].text.startswith("Portugal proposed")  # undated: may answer
    for date in ("2024-01-09", "2025-06-01"):  # written in or after the year asked about: may answer
        assert judged(question, dated(hits, "fish", date)).candidates[0].text.startswith("Portugal proposed")
    written_before = judged(question, dated(hits, "fish", "2023-05-30"))
    assert all(c.p < 1e-6 for c in written_before.candidates if c.doc_id == "fish")
    assert written_before.confidence < 0.1 and not written_before.answers(0.5)
    # a passage that names the year asked about may still speak of it ("the 2024 quota will be …")
    ahead = [h.model_copy(update={"text": h.text.replace("four thousand tonnes", "four thousand tonnes for 2024")})
             for h in dated(hits, "fish", "2023-05-30")]
    assert judged(question, ahead).candidates[0].text.startswith("Portugal proposed")


def test_cause_feature_needs_a_why_question_and_a_causal_sentence(embedder):
    hits = make_hits([("fish", FISH)])
    spain = "Spain rejected the sardine quota because its fleets depend on the northern grounds."
    assert features_for("Why did Spain reject the quota?", hits, embedder)[spain]["cause_asked_and_stated"] == 1.0
    assert features_for("Did Spain reject the quota?", hits, embedder)[spain]["cause_asked_and_stated"] == 0.0


def test_polarity_and_degree_must_match_between_question_and_sentence(embedder):
    hits = make_hits([("fish", FISH)])
    spain = "Spain rejected the sardine quota because its fleets depend on the northern grounds."
    turned = features_for("What did Spain not reject?", hits, embedder)[spain]
    plain = features_for("What did Spain reject?", hits, embedder)[spain]
    assert turned["negation_unmatched"] == 1.0 and plain["negation_unmatched"] == 0.0
    doc = "Spain never accepted the sardine quota.\nSpain accepted the sardine quota at last.\n"
    f = features_for("Which quota did Spain accept?", make_hits([("q", doc)]), embedder)
    assert f["Spain never accepted the sardine quota."]["negation_added"] == 1.0
    assert f["Spain accepted the sardine quota at last."]["negation_added"] == 0.0
    f = features_for("What is the largest sardine quota?", make_hits([("q", FISH)]), embedder)
    assert all(v["degree_unmatched"] == 1.0 for v in f.values())  # no sentence says "largest"
    doc = "The largest sardine quota went to Portugal.\nA small sardine quota went to Spain.\n"
    f = features_for("What is the largest sardine quota?", make_hits([("q", doc)]), embedder)
    assert f["The largest sardine quota went to Portugal."]["degree_unmatched"] == 0.0
    assert f["A small sardine quota went to Spain."]["degree_unmatched"] == 1.0
    # "how long did it last" is a verb, not a degree
    assert all(v["degree_unmatched"] == 0.0 for v in features_for("How long did the talks last?", hits, embedder).values())


@pytest.mark.parametrize("question, sentence, swapped", [
    ("Who went to the fort in July 1755?", "Braddock went to the fort in June 1755.", True),  # month
    ("What spread around the end of the 20th century?", "Near the end of the 19th century engines spread.", True),
    ("How long did the German Ghetto Uprising last?", "The Warsaw Ghetto Uprising lasted a month.", True),  # name
    ("What did OPEC do in 1979 to gain share?", "OPEC cut output in 1981 to gain share.", False),  # no neighbour kept
    ("Who went to the fort in June 1755?", "Braddock went to the fort in June 1755.", False),  # the same value
    ("Who captured Fort Beausejour?", "The British captured Fort Beauséjour in 1755.", False),  # spelt two ways
    ("How long did the Austin–Wei Fenghe call last?", "The call with Wei Fenge lasted 45 minutes.", False),
    ("Which laws predate EU law?", "European Union law came later.", False),  # acronyms are left out
    ("What happened in the 29th year?", "It happened in the 20th year.", True),  # digits are never spelling
])
def test_a_value_of_the_question_swapped_for_another_of_its_kind(question, sentence, swapped):
    assert value_swapped(QuestionTerms.of(question, None).tokens, sentence) is swapped


def test_value_swapped_is_a_feature_of_each_sentence(embedder):
    doc = "Braddock marched to the fort in June 1755.\nThe fort fell in July 1758.\nHe reached the fort in July.\n"
    f = features_for("Who marched to the fort in July 1755?", make_hits([("fort", doc)]), embedder)
    assert f["Braddock marched to the fort in June 1755."]["value_swapped"] == 1.0
    assert f["The fort fell in July 1758."]["value_swapped"] == 1.0  # the year beside "July" is another
    assert f["He reached the fort in July."]["value_swapped"] == 0.0  # no value in the place of the question's


# ---- the fitted model -----------------------------------------------------------


def _model(coef: dict[str, float], intercept: float = 0.0, threshold: float = 0.5) -> AnswerabilityModel:
    return AnswerabilityModel.from_dict({
        "recommended_threshold": threshold,
        "sentence_model": {"features": list(FEATURES), "mean": [0.0] * len(FEATURES),
                           "scale": [1.0] * len(FEATURES), "coef": [coef.get(f, 0.0) for f in FEATURES],
                           "intercept": intercept},
        "answer_calibration": {"slope": 1.0, "intercept": 0.0}})


def test_the_shipped_model_is_complete_and_says_what_it_was_fitted_on():
    data = json.loads(MODEL_PATH.read_text())
    model = AnswerabilityModel.load()
    assert model.features == FEATURES
    assert 0 < model.recommended_threshold < 1
    assert {s["set"] for s in data["trained_on"]} >= {"news-dev", "squad"}
    assert data["cross_validated"]["decisions"] and data["rows"]["positive"] > 0


def test_a_model_with_features_this_code_lacks_is_refused():
    data = json.loads(MODEL_PATH.read_text())
    data["sentence_model"]["features"] = data["sentence_model"]["features"][:-1] + ["telepathy"]
    with pytest.raises(ValueError, match="telepathy"):
        AnswerabilityModel.from_dict(data)


def test_assessor_ranks_by_the_model_and_calibrates_the_best(embedder):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])
    stats = CountingStats([h.text for h in hits])
    question = "What quota did Portugal propose for sardines?"
    retrieval = Retrieval(hits=hits, query_embedding=embedder.get_query_embedding(question))
    assessment = Assessor(SentenceVectors(embedder), stats, _model({"coverage": 6.0}, -3.0)).assess(question, retrieval)
    assert assessment.candidates[0].text.startswith("Portugal proposed a quota")
    ps = [c.p for c in assessment.candidates]
    assert ps == sorted(ps, reverse=True)
    assert assessment.confidence == pytest.approx(1 / (1 + np.exp(-(6.0 * assessment.candidates[0].features[
        "coverage"] - 3.0))), abs=1e-3)
    assert assessment.answers(0.5)
    # the same evidence judged by a model that distrusts it
    doubtful = Assessor(SentenceVectors(embedder), stats, _model({"coverage": -6.0}, -6.0)).assess(question, retrieval)
    assert doubtful.confidence < 0.01 and not doubtful.answers(0.5)


@pytest.mark.parametrize("question, parts", [
    ("What quota did Portugal propose?", ["What quota did Portugal propose?"]),
    ("Who met in Lisbon, and how long did their talks last?", ["Who met in Lisbon?", "how long did their talks last?"]),
    ("When did Spain reject the quota, and with whom?",
     ["When did Spain reject the quota?", "with whom did Spain reject the quota?"]),  # borrows the first part's words
    ("Who won? When was it?", ["Who won?", "When was it won?"]),
    ("Where and when were the talks held?", ["Where were the talks held?", "when were the talks held?"]),
    ("Who met in Lisbon and how long did they talk?", ["Who met in Lisbon?", "how long did they talk?"]),
    ("Hormones support T-cells and what species?", ["Hormones support T-cells and what species?"]),
    ("Why did Spain and Portugal disagree?", ["Why did Spain and Portugal disagree?"]),  # "and" between names
])
def test_question_parts(question, parts):
    assert question_parts(question) == parts


def test_each_part_of_a_question_is_judged_on_its_own(embedder):
    hits = make_hits([("fish", FISH), ("rain", RAIN)])
    stats = CountingStats([h.text for h in hits])
    assessor = Assessor(SentenceVectors(embedder), stats, _model({"coverage": 6.0}, -3.0))
    single = "What quota did Portugal propose for sardines?"
    assert assessor.assess(single, Retrieval(hits, embedder.get_query_embedding(single))).parts == []
    question = "What quota did Portugal propose for sardines, and when will the talks resume in Madrid?"
    assessment = assessor.assess(question, Retrieval(hits, embedder.get_query_embedding(question)), threshold=0.3)
    assert [a.candidates[0].text.split()[:2] for a in assessment.parts] == [["Portugal", "proposed"], ["The", "talks"]]
    assert all(a.threshold == 0.3 for a in [assessment, *assessment.parts])
    assert assessment.answers() == (assessment.confidence >= 0.3)


def test_no_passages_means_no_confidence(embedder):
    question = "What quota did Portugal propose?"
    assessment = Assessor(SentenceVectors(embedder), CountingStats([]), _model({})).assess(
        question, Retrieval(hits=[], query_embedding=embedder.get_query_embedding(question)))
    assert assessment.confidence == 0.0 and assessment.candidates == []
    assert assessment.reason == "No passage in the documents relates to this question."


def test_refusal_reason_names_what_the_documents_mention_and_what_they_lack():
    hits = make_hits([("fish", FISH)])
    stats = CountingStats([h.text for h in hits])
    q = QuestionTerms.of("How many warships escorted the sardine fleets?", stats)
    reason = explain_refusal(q, hits, candidates_from(hits)[2])  # "Spain rejected … its fleets …"
    assert reason.startswith("The documents mention")
    assert "“warships”" in reason.split("say nothing about")[1]
    assert "“fleets”" in reason.split("say nothing about")[0]
    q = QuestionTerms.of("What quota did Portugal propose?", stats)
    assert "no passage states what was asked" in explain_refusal(q, hits, candidates_from(hits)[1])
    # a thing the question names that no document mentions comes first
    q = QuestionTerms.of("How many warships escorted the sardine fleets to Gibraltar?", stats)
    assert explain_refusal(q, hits, candidates_from(hits)[2]).split("say nothing about ")[1].startswith("“Gibraltar”")


def test_a_refusal_names_the_value_the_closest_passage_has_in_place_of_the_questions():
    doc = "Braddock marched to the fort in June 1755.\nThe fort stood on the river.\n"
    hits = make_hits([("fort", doc)])
    q = QuestionTerms.of("Who marched to the fort in July 1755?", CountingStats([h.text for h in hits]))
    marched, stood = candidates_from(hits)
    assert explain_refusal(q, hits, marched) == "The closest passage speaks of “June 1755”, not “July 1755”."
    assert explain_refusal(q, hits, stood).startswith("The documents mention")  # no swap: the usual reason


def test_question_terms_keep_each_part_of_the_question_apart():
    q = QuestionTerms.of("Which news outlet reported how many warships sailed to Lisbon?", None)
    assert q.category == {stem("news"), stem("outlet")}  # names the kind of answer
    assert q.wh_modifiers == {stem("many")}
    assert (stem("warships"), stem("sailed")) in q.bigrams and all(len(b) == 2 for b in q.bigrams)
    assert q.names == [stem("lisbon")] and q.focus == [stem("news"), stem("outlet")]
    reason = explain_refusal(q, make_hits([("fish", FISH)]), None)
    assert "“many”" not in reason and "“warships”" in reason


def test_category_words_do_not_count_as_missing(embedder):
    hits = make_hits([("fish", FISH)])
    f = features_for("Which country proposed a quota of four thousand tonnes?", hits, embedder)
    best = f["Portugal proposed a quota of four thousand tonnes for sardines in the northern zone."]
    assert best["sentence_missing_idf"] > 0 and best["specific_missing_sentence"] == 0.0


# ---- the sentence-vector cache ----------------------------------------------------


class CountingEmbedder(HashEmbedding):
    """The hashed bag of words, counting the texts it embeds."""

    embedded: int = 0

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        self.embedded += len(texts)
        return super()._get_text_embeddings(texts)

    def _get_text_embedding(self, text: str) -> list[float]:
        self.embedded += 1
        return super()._get_text_embedding(text)


def test_sentence_vectors_are_cached_small_and_bounded():
    embedder = CountingEmbedder()
    vectors = SentenceVectors(embedder, max_items=3)
    texts = ["Portugal proposed a quota.", "Spain rejected it.", "Portugal proposed a quota."]
    rows = vectors.get(texts)
    assert rows.dtype == np.float32 and rows.shape[0] == 3
    assert embedder.embedded == 2 and len(vectors) == 2  # the repeated text embedded once
    exact = np.asarray(embedder.get_text_embedding_batch(texts[:2]), dtype=np.float32)
    assert np.abs(rows[:2] - exact).max() < 1e-3  # kept in half precision: cosines move by less than 0.001
    assert not np.allclose(rows[0], rows[1])
    before = embedder.embedded
    vectors.get(texts)
    assert embedder.embedded == before  # warm: nothing re-embedded
    vectors.get(["One more.", "And another.", "A third new one."])
    assert len(vectors) == 3  # bounded: the oldest entries went
    vectors.get(texts[:1])
    assert embedder.embedded == before + 3 + 1  # evicted, so embedded again
