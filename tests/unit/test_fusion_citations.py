"""Reciprocal rank fusion, [n] marker parsing and citation verification."""

from __future__ import annotations

import pytest

from rag.citations import parse_cited_sentences, render_sentence, verify
from rag.embeddings import HashEmbedding
from rag.fusion import decisive_keyword_hits, promote_decisive, reciprocal_rank_fusion
from rag.retrieval import HybridRetriever
from rag.sentence_vectors import SentenceVectors
from rag.settings import RetrieveSettings, VerifySettings
from rag.support import SupportChecker, lexical_support, passage_windows
from rag.types import Hit, Passage

# ---- reciprocal_rank_fusion -------------------------------------------------


def test_rrf_known_values_equal_weights():
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 62)
    assert fused["d"] == pytest.approx(1 / 63)
    order = [i for i, _ in reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]], k=60)]
    assert order == ["b", "c", "a", "d"]


def test_rrf_weights_change_the_order():
    # Weighted 3:1 the first list's winner beats the item both lists like.
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "x"]], weights=[3.0, 1.0], k=60)
    scores = dict(fused)
    assert scores["a"] == pytest.approx(3 / 61)
    assert scores["b"] == pytest.approx(3 / 62 + 1 / 61)
    assert scores["x"] == pytest.approx(1 / 62)
    assert [i for i, _ in fused] == ["b", "a", "x"]
    fused = reciprocal_rank_fusion([["a", "b"], ["x", "b"]], weights=[1.0, 5.0], k=1)
    assert [i for i, _ in fused] == ["x", "b", "a"]
    assert dict(fused)["x"] == pytest.approx(5 / 2)


def test_rrf_k_matters():
    small = dict(reciprocal_rank_fusion([["a", "b"]], k=1))
    assert small["a"] == pytest.approx(1 / 2) and small["b"] == pytest.approx(1 / 3)


def test_rrf_ties_keep_first_appearance_order():
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "a"]], k=60)
    assert fused[0][1] == fused[1][1]
    assert [i for i, _ in fused] == ["a", "b"]
    fused = reciprocal_rank_fusion([["b", "a"], ["a", "b"]], k=60)
    assert [i for i, _ in fused] == ["b", "a"]


def test_rrf_duplicates_within_a_list_count_once():
    fused = dict(reciprocal_rank_fusion([["a", "a", "b", "a"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)  # rank 2 after de-duplication, not 3


def test_rrf_zero_weight_ignores_a_list():
    alone = reciprocal_rank_fusion([["a", "b", "c"]], k=60)
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "z", "b"]], weights=[1.0, 0.0], k=60)
    scores = dict(fused)
    for item, score in alone:
        assert scores[item] == pytest.approx(score)
    assert [i for i, _ in fused][:3] == ["a", "b", "c"]
    assert scores.get("z", 0.0) == 0.0


def test_rrf_mismatched_weights_raise():
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0])
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])


def test_rrf_empty_weights_list_for_rankings_raises():
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[])


def test_rrf_empty_inputs():
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []


# ---- decisive keyword matches -------------------------------------------------

# The case: BM25 ranks "exact" first with 5x the next score, but the seven items both retrievers
# find fairly good outrank it under RRF (dense 0.5, keyword 1.0, k = 60), which puts it 8th.
DECISIVE_KEYWORD = [("exact", 10.0), ("b", 2.0), ("c", 1.9), ("d", 1.8), ("e", 1.7), ("f", 1.6), ("g", 1.5),
                    ("h", 1.4)]
DENSE = ["b", "c", "d", "e", "f", "g", "h", "z"]
# Same ranks, flat scores: nothing stands out, RRF decides.
FLAT_KEYWORD = [("exact", 4.0), ("b", 3.8), ("c", 3.5), ("d", 3.2), ("e", 3.0), ("f", 2.0), ("g", 1.5), ("h", 1.4)]


def _rrf(keyword):
    return reciprocal_rank_fusion([DENSE, [i for i, _ in keyword]], [0.5, 1.0], 60)


def test_rrf_alone_sinks_a_decisive_keyword_match():
    assert [i for i, _ in _rrf(DECISIVE_KEYWORD)].index("exact") == 7


def test_decisive_keyword_hit_goes_first():
    fused = _rrf(DECISIVE_KEYWORD)
    promoted = promote_decisive(fused, DECISIVE_KEYWORD, ratio=3.0)
    assert [i for i, _ in promoted] == ["exact"] + [i for i, _ in fused if i != "exact"]
    scores = [s for _, s in promoted]
    assert scores == sorted(scores, reverse=True)  # still best first
    assert dict(promoted)["b"] == pytest.approx(dict(fused)["b"])  # the others keep their scores


def test_flat_keyword_scores_leave_rrf_alone():
    fused = _rrf(FLAT_KEYWORD)
    assert decisive_keyword_hits(FLAT_KEYWORD, 3.0) == []
    assert promote_decisive(fused, FLAT_KEYWORD, ratio=3.0) == fused


def test_decisive_threshold_is_relative_to_the_fifth_score():
    # 10 / 1.7 = 5.9: decisive at ratio 5, not at 6; ratio 0 (or ≤ 1) turns the rule off.
    assert decisive_keyword_hits(DECISIVE_KEYWORD, 5.0) == ["exact"]
    assert decisive_keyword_hits(DECISIVE_KEYWORD, 6.0) == []
    assert decisive_keyword_hits(DECISIVE_KEYWORD, 0.0) == []
    assert decisive_keyword_hits(DECISIVE_KEYWORD, 1.0) == []
    fused = _rrf(DECISIVE_KEYWORD)
    assert promote_decisive(fused, DECISIVE_KEYWORD, ratio=0.0) == fused


def test_several_decisive_hits_keep_their_fused_order():
    # Two exact matches (e.g. a document's title chunk and its fact chunk) tie in BM25; the dense side,
    # through the fused order, decides between them.
    keyword = [("title", 9.0), ("fact", 8.9), ("c", 1.9), ("d", 1.8), ("e", 1.7), ("f", 1.6)]
    fused = reciprocal_rank_fusion([["c", "fact", "d"], [i for i, _ in keyword]], [0.5, 1.0], 60)
    promoted = [i for i, _ in promote_decisive(fused, keyword, ratio=3.0)]
    assert promoted[:2] == ["fact", "title"]
    assert set(promoted) == {i for i, _ in fused}


def test_few_keyword_hits_compare_with_the_last():
    assert decisive_keyword_hits([("a", 9.0), ("b", 2.0)], 3.0) == ["a"]
    assert decisive_keyword_hits([("a", 9.0), ("b", 4.0)], 3.0) == []
    assert decisive_keyword_hits([("a", 9.0)], 3.0) == []  # a lone hit has nothing to stand out from
    assert decisive_keyword_hits([], 3.0) == []
    assert decisive_keyword_hits([("a", 9.0), ("b", 0.0)], 3.0) == []


def _record(chunk_id: str) -> Passage:
    return Passage(chunk_id=chunk_id, doc_id="doc", title="", start=0, end=1, text=chunk_id)


class _Stores:
    """Dense and keyword sides of the retriever with fixed answers."""

    def __init__(self, dense: list[str], keyword: list[tuple[str, float]]) -> None:
        self.dense, self.keyword = dense, keyword
        self.keyword_calls = 0

    def query(self, embedding, k):
        return [(cid, 0.5) for cid in self.dense[:k]]

    def keyword_search(self, query, limit):
        self.keyword_calls += 1
        return self.keyword[:limit]

    def get_chunks(self, chunk_ids):
        return {cid: _record(cid) for cid in chunk_ids}


@pytest.mark.parametrize("ratio, first", [(None, "exact"), (0.0, "b")])
def test_retriever_puts_a_decisive_match_first_by_default(ratio, first):
    stores = _Stores(DENSE, DECISIVE_KEYWORD)
    settings = RetrieveSettings() if ratio is None else RetrieveSettings(decisive_ratio=ratio)
    hits = HybridRetriever(stores, stores, HashEmbedding(), settings).retrieve("who filed report 00042?", 10).hits
    assert hits[0].chunk_id == first
    assert [h.chunk_id for h in hits].index("exact") == (0 if ratio is None else 7)
    assert next(h for h in hits if h.chunk_id == "exact").keyword_rank == 1
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:])) and hits[0].score <= 1
    assert stores.keyword_calls == 1  # no extra query


def test_retriever_leaves_a_flat_ranking_to_rrf():
    stores = _Stores(DENSE, FLAT_KEYWORD)
    hits = HybridRetriever(stores, stores, HashEmbedding(), RetrieveSettings()).retrieve("q", 10).hits
    assert [h.chunk_id for h in hits] == [i for i, _ in _rrf(FLAT_KEYWORD)]


# ---- parse_cited_sentences --------------------------------------------------


def parsed(answer: str) -> list[tuple[str, list[int]]]:
    return [(c.text, c.markers) for c in parse_cited_sentences(answer)]


def test_marker_after_sentence_end_belongs_to_previous_sentence():
    assert parsed("A is true. [1] B is true [2].") == [("A is true.", [1]), ("B is true.", [2])]


def test_marker_list_and_adjacent_markers():
    assert parsed("Alpha beta gamma [1, 2]. Delta epsilon [1][3].") == [
        ("Alpha beta gamma.", [1, 2]), ("Delta epsilon.", [1, 3])]
    assert parsed("Claim here [1; 3].") == [("Claim here.", [1, 3])]


def test_markers_are_stripped_and_deduplicated():
    result = parse_cited_sentences("The  treaty [2] was signed [2] in Geneva [1].")
    assert len(result) == 1
    assert result[0].text == "The treaty was signed in Geneva."
    assert result[0].markers == [2, 1]
    assert "[" not in result[0].text


def test_sentence_without_markers_is_kept_with_none():
    assert parsed("No citation here. Cited one [4].") == [("No citation here.", []), ("Cited one.", [4])]


def test_marker_only_answer_has_no_sentences():
    assert parsed("[1] [2]") == []
    assert parsed("") == []


def test_leading_marker_on_first_sentence_stays_with_it():
    assert parsed("[1] First sentence here.") == [("First sentence here.", [1])]


def test_marker_glued_to_period_ends_the_sentence():
    assert parsed("Paris is the capital of France.[1] The moon is made of cheese.") == [
        ("Paris is the capital of France.", [1]), ("The moon is made of cheese.", [])]


def test_render_sentence_round_trips_through_parse():
    for text, numbers in [("Hello world.", [1, 2]), ("Is it true?", [3]), ("No final stop", [1]), ("Plain.", [])]:
        rendered = render_sentence(text, numbers)
        again = parse_cited_sentences(rendered)
        assert len(again) == 1
        assert again[0].markers == numbers
    assert render_sentence("Hello world.", [1, 2]) == "Hello world [1][2]."
    assert render_sentence("Is it true?", [3]) == "Is it true? [3]"
    assert render_sentence("No final stop", [1]) == "No final stop [1]."


# ---- verify -----------------------------------------------------------------

DOC = (
    "Talks Open In Geneva\n"
    "The fishing treaty was signed in Geneva by both delegations on Monday. "
    "Officials praised the agreement as historic. The weather was mild.\n"
    "Portugal proposed a sardine quota of four thousand tonnes. "
    "Spain rejected the quota because its fleets depend on the northern grounds.\n"
)


def hit_for(doc_id: str, text: str, first: str, last: str, score: float = 0.9) -> Hit:
    """A Hit whose text is the slice of ``text`` from sentence ``first`` to the end of sentence ``last``."""
    start = text.index(first)
    end = text.index(last) + len(last)
    return Hit(chunk_id=f"{doc_id}:{start}-{end}", doc_id=doc_id, title=doc_id.title(), start=start, end=end,
               text=text[start:end], score=score)


@pytest.fixture
def hits() -> list[Hit]:
    return [
        hit_for("geneva", DOC, "The fishing treaty", "The weather was mild."),
        hit_for("geneva", DOC, "Portugal proposed", "northern grounds."),
    ]


@pytest.fixture(params=["vectors", "lexical-only"])
def checker(request) -> SupportChecker:
    vectors = SentenceVectors(HashEmbedding()) if request.param == "vectors" else None
    return SupportChecker(VerifySettings(), vectors)


def test_supported_marker_kept_with_exact_quote(hits, checker):
    v = verify("The fishing treaty was signed in Geneva on Monday [1].", hits, checker)
    assert v.dropped == 0
    assert len(v.sentences) == 1 and v.sentences[0].citations == [1]
    (c,) = v.citations
    assert c.n == 1 and c.doc_id == "geneva" and c.chunk_id == hits[0].chunk_id and c.title == "Geneva"
    assert c.quote == "The fishing treaty was signed in Geneva by both delegations on Monday."
    assert DOC[c.start:c.end] == c.quote  # offsets into the document's stored text
    assert c.score == hits[0].score
    assert v.text == "The fishing treaty was signed in Geneva on Monday [1]."


def test_quote_is_the_supporting_sentence_not_the_chunk(hits, checker):
    v = verify("Spain rejected the quota because of the northern grounds [2].", hits, checker)
    (c,) = v.citations
    assert c.quote == "Spain rejected the quota because its fleets depend on the northern grounds."
    assert DOC[c.start:c.end] == c.quote
    assert c.chunk_id == hits[1].chunk_id


def test_out_of_range_marker_dropped_and_counted(hits, checker):
    v = verify("The fishing treaty was signed in Geneva [1][3]. Officials praised the agreement [0].", hits, checker)
    assert v.dropped == 2
    assert [s.text for s in v.sentences] == ["The fishing treaty was signed in Geneva."]
    assert [c.n for c in v.citations] == [1]


def test_marker_to_unsupporting_passage_dropped(hits, checker):
    # [2] is about sardine quotas, not the treaty signing.
    v = verify("The fishing treaty was signed in Geneva [1][2].", hits, checker)
    assert v.dropped == 1
    assert v.sentences[0].citations == [1]
    assert [c.chunk_id for c in v.citations] == [hits[0].chunk_id]


def test_renumbering_follows_order_of_appearance(hits, checker):
    answer = ("Spain rejected the quota because its fleets depend on the northern grounds [2]. "
              "Officials praised the agreement as historic [1]. "
              "Portugal proposed a sardine quota [2].")
    v = verify(answer, hits, checker)
    assert [c.n for c in v.citations] == [1, 2, 3]
    assert [s.citations for s in v.sentences] == [[1], [2], [3]]
    assert [c.chunk_id for c in v.citations] == [hits[1].chunk_id, hits[0].chunk_id, hits[1].chunk_id]
    assert v.citations[1].quote == "Officials praised the agreement as historic."
    assert v.citations[2].quote == "Portugal proposed a sardine quota of four thousand tonnes."
    assert v.text == ("Spain rejected the quota because its fleets depend on the northern grounds [1]. "
                      "Officials praised the agreement as historic [2]. Portugal proposed a sardine quota [3].")
    for c in v.citations:
        assert DOC[c.start:c.end] == c.quote


def test_same_quote_reuses_one_number(hits, checker):
    v = verify("Officials praised the agreement [1]. The agreement was praised as historic by officials [1].",
               hits, checker)
    assert len(v.citations) == 1
    assert [s.citations for s in v.sentences] == [[1], [1]]


def test_sentence_without_surviving_citation_is_removed(hits, checker):
    answer = ("The fishing treaty was signed in Geneva [1]. "
              "Aliens landed on the moon yesterday [1]. "
              "An uncited remark.")
    v = verify(answer, hits, checker)
    assert [s.text for s in v.sentences] == ["The fishing treaty was signed in Geneva."]
    assert v.dropped == 1


def test_all_unsupported_gives_no_sentences(hits, checker):
    v = verify("Aliens landed on the moon [1]. Football results were announced [2]. Nothing here [7].",
               hits, checker)
    assert v.sentences == [] and v.citations == []
    assert v.dropped == 3
    assert v.text == ""


def test_empty_answer_or_no_hits(hits, checker):
    assert verify("", hits, checker).sentences == []
    v = verify("The fishing treaty was signed in Geneva [1].", [], checker)
    assert v.sentences == [] and v.dropped == 1


def test_unsupported_claim_after_glued_marker_is_not_cited(hits, checker):
    v = verify("The fishing treaty was signed in Geneva by both delegations.[1] Aliens invaded Geneva.", hits, checker)
    assert all("Aliens" not in s.text for s in v.sentences)


# ---- SupportChecker ---------------------------------------------------------


def test_lexical_support_share():
    assert lexical_support(["a", "b", "c", "d"], {"a", "b", "x"}) == 0.5
    assert lexical_support(["a", "a"], {"a"}) == 1.0
    assert lexical_support([], {"a"}) == 0.0


def test_passage_windows_are_absolute_and_include_pairs(hits):
    windows = passage_windows(hits[0])
    singles = [DOC[s:e] for s, e in windows[:3]]
    assert singles == ["The fishing treaty was signed in Geneva by both delegations on Monday.",
                       "Officials praised the agreement as historic.", "The weather was mild."]
    assert len(windows) == 5  # 3 sentences + 2 adjacent pairs
    assert DOC[windows[3][0]:windows[3][1]] == singles[0] + " " + singles[1]


def test_two_sentence_window_supports_claim_spanning_both(hits):
    checker = SupportChecker(VerifySettings(), None)
    claim = "The treaty signed in Geneva by delegations was praised as historic."
    support = checker.check(claim, hits[0])
    assert support is not None and support.how == "lexical"
    assert DOC[support.start:support.end] == ("The fishing treaty was signed in Geneva by both delegations on Monday. "
                                              "Officials praised the agreement as historic.")


def test_semantic_fallback_only_with_vectors():
    text = "Geneva Geneva Geneva Geneva Geneva Geneva talks."
    hit = Hit(chunk_id="c", doc_id="d", title="T", start=10, end=10 + len(text), text=text, score=1.0)
    claim = "Geneva Geneva Geneva Geneva Geneva Geneva zebra yak."  # 1 of 3 distinct words: lexically weak
    assert SupportChecker(VerifySettings(), None).check(claim, hit) is None
    support = SupportChecker(VerifySettings(), SentenceVectors(HashEmbedding())).check(claim, hit)
    assert support is not None and support.how == "semantic"
    assert support.score >= VerifySettings().semantic_threshold
    assert (support.start, support.end) == (10, 10 + len(text))
    # and an unrelated claim is not rescued by the vectors
    assert SupportChecker(VerifySettings(), SentenceVectors(HashEmbedding())).check(
        "Football results were announced in Madrid.", hit) is None


def test_a_quote_never_starts_with_a_date_line_or_headline():
    text = " date 2023-05-30 30.05.2023\n\nTreaty Talks Collapse\nThe council rejected the harbour treaty in May.\n"
    start = text.index("date")
    hit = Hit(chunk_id="c", doc_id="d", title="T", start=start, end=len(text.rstrip()), text=text[start:].rstrip(),
              score=1.0)
    claim = "In May 2023 the council rejected the harbour treaty (Treaty Talks Collapse)."
    support = SupportChecker(VerifySettings(), None).check(claim, hit)
    assert support is not None
    assert text[support.start:support.end] == "The council rejected the harbour treaty in May."
