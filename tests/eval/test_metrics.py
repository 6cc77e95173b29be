"""Metric functions on hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

import math

import pytest

from eval.metrics import (aggregate, answer_scores, calibration, citation_scores, covered_answer, decision_correct,
                          decisions, overlaps, percentile, retrieval_scores, wrongly_answered)

# ---- overlaps ---------------------------------------------------------------


def test_overlapping_spans_in_the_same_document_overlap():
    assert overlaps(("d", 0, 10), ("d", 5, 15))
    assert overlaps(("d", 5, 15), ("d", 0, 10))
    assert overlaps(("d", 0, 100), ("d", 40, 50))  # containment
    assert overlaps(("d", 40, 50), ("d", 0, 100))
    assert overlaps(("d", 3, 7), ("d", 3, 7))  # identical


def test_touching_spans_do_not_overlap():
    assert not overlaps(("d", 0, 10), ("d", 10, 20))  # end == start
    assert not overlaps(("d", 10, 20), ("d", 0, 10))
    assert overlaps(("d", 0, 11), ("d", 10, 20))  # one character shared


def test_spans_in_another_document_never_overlap():
    assert not overlaps(("a", 0, 100), ("b", 0, 100))
    assert not overlaps(("a", 0, 100), ("b", 50, 60))


# ---- retrieval_scores -------------------------------------------------------

GOLD = ("doc", 100, 200)


def test_perfect_ranking_scores_one_everywhere():
    scores = retrieval_scores([("doc", 90, 210), ("other", 0, 50)], [GOLD])
    for k in (1, 3, 5, 10):
        assert scores[f"hit@{k}"] == 1.0
        assert scores[f"recall@{k}"] == 1.0
    assert scores["mrr"] == 1.0
    assert scores["ndcg@10"] == pytest.approx(1.0)


def test_no_hit_scores_zero_everywhere():
    retrieved = [("doc", 0, 100), ("doc", 200, 300), ("other", 100, 200)]  # touching and other doc only
    scores = retrieval_scores(retrieved, [GOLD])
    for k in (1, 3, 5, 10):
        assert scores[f"hit@{k}"] == 0.0
        assert scores[f"recall@{k}"] == 0.0
    assert scores["mrr"] == 0
    assert scores["ndcg@10"] == 0.0


def test_nothing_retrieved_scores_zero():
    scores = retrieval_scores([], [GOLD])
    assert scores["mrr"] == 0.0 and scores["hit@10"] == 0.0 and scores["ndcg@10"] == 0.0


def test_gold_at_rank_two():
    scores = retrieval_scores([("other", 0, 500), ("doc", 150, 160), ("doc", 0, 50)], [GOLD])
    assert scores["hit@1"] == 0.0
    assert scores["recall@1"] == 0.0
    assert scores["hit@3"] == 1.0
    assert scores["recall@3"] == 1.0
    assert scores["mrr"] == 0.5
    assert scores["ndcg@10"] == pytest.approx(1 / math.log2(3))


def test_two_gold_sources_found_at_ranks_one_and_four():
    gold = [("a", 0, 100), ("b", 0, 100)]
    retrieved = [("a", 50, 150), ("c", 0, 10), ("c", 20, 30), ("b", 90, 120), ("c", 40, 50)]
    scores = retrieval_scores(retrieved, gold)
    assert scores["hit@1"] == 1.0
    assert scores["recall@1"] == 0.5
    assert scores["recall@3"] == 0.5
    assert scores["recall@5"] == 1.0
    assert scores["recall@10"] == 1.0
    assert scores["mrr"] == 1.0
    dcg = 1 / math.log2(2) + 1 / math.log2(5)
    ideal = 1 / math.log2(2) + 1 / math.log2(3)
    assert scores["ndcg@10"] == pytest.approx(dcg / ideal)


def test_a_gold_source_counts_once_at_its_first_rank():
    retrieved = [("x", 0, 1), ("doc", 100, 120), ("doc", 150, 170), ("doc", 180, 200)]
    scores = retrieval_scores(retrieved, [GOLD])
    assert scores["recall@10"] == 1.0  # not 3.0
    assert scores["mrr"] == 0.5
    assert scores["ndcg@10"] == pytest.approx(1 / math.log2(3))


def test_gold_beyond_rank_ten_does_not_count_for_ndcg_but_for_mrr():
    retrieved = [("x", i, i + 1) for i in range(10)] + [GOLD]
    scores = retrieval_scores(retrieved, [GOLD])
    assert scores["hit@10"] == 0.0 and scores["ndcg@10"] == 0.0
    assert scores["mrr"] == pytest.approx(1 / 11)


def test_custom_ks():
    scores = retrieval_scores([("x", 0, 1), GOLD], [GOLD], ks=(2,))
    assert scores["hit@2"] == 1.0 and scores["recall@2"] == 1.0
    assert "hit@1" not in scores


def test_empty_gold_raises_value_error():
    with pytest.raises(ValueError):
        retrieval_scores([("doc", 0, 10)], [])


def test_ndcg_never_exceeds_one_when_one_chunk_covers_two_gold_quotes():
    scores = retrieval_scores([("d", 0, 100)], [("d", 0, 10), ("d", 50, 60)])
    assert 0.0 <= scores["ndcg@10"] <= 1.0


# ---- answer_scores ----------------------------------------------------------


def test_must_include_groups_with_alternatives_case_insensitive():
    groups = [["Singapore"], ["June", "Jun."], ["defence", "defense"]]
    scores = answer_scores("It was held in SINGAPORE in june.", True, True, groups)
    assert scores["must_include"] == pytest.approx(2 / 3)
    assert scores["fully_covered"] == 0.0
    assert scores["false_refusal"] == 0.0
    assert scores["refusal_correct"] is None

    full = answer_scores("Singapore, early June; the Defense ministers met.", True, True, groups)
    assert full["must_include"] == 1.0 and full["fully_covered"] == 1.0


def test_any_alternative_of_a_group_satisfies_it():
    assert answer_scores("about 5 percent", True, True, [["5%", "5 percent"]])["must_include"] == 1.0
    assert answer_scores("about 5%", True, True, [["5%", "5 percent"]])["must_include"] == 1.0
    assert answer_scores("about five", True, True, [["5%", "5 percent"]])["must_include"] == 0.0


def test_no_must_include_groups_gives_no_coverage():
    scores = answer_scores("anything", True, True, [])
    assert scores["must_include"] is None and scores["fully_covered"] is None
    assert scores["false_refusal"] == 0.0


def test_refusing_an_answerable_question_is_a_false_refusal():
    scores = answer_scores("The sources do not say.", True, False, [["Singapore"]])
    assert scores["false_refusal"] == 1.0
    assert scores["refusal_correct"] is None
    assert scores["must_include"] == 0.0


def test_refusing_an_unanswerable_question_is_correct():
    scores = answer_scores("The sources do not say.", False, False, [])
    assert scores == {"must_include": None, "fully_covered": None, "false_refusal": None, "refusal_correct": 1.0}


def test_answering_an_unanswerable_question_is_wrong():
    scores = answer_scores("It was 42.", False, True, [])
    assert scores["refusal_correct"] == 0.0
    assert scores["false_refusal"] is None and scores["must_include"] is None


# ---- citation_scores --------------------------------------------------------


def test_strict_versus_lenient_precision_and_recall():
    gold = [("d", 100, 200), ("e", 0, 50)]
    citations = [("d", 150, 250), ("d", 300, 400), ("f", 0, 50), ("e", 50, 60)]  # only the first overlaps gold
    scores = citation_scores(citations, [True, True, False, False], [True, False, True], gold)
    assert scores["precision_strict"] == 0.25 and scores["precision_strict_answerable"] == 0.25
    assert scores["precision_lenient"] == 0.5  # strict hit or supports its sentence
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["gold_cited"] == 0.5  # d cited, e only touched


def test_lenient_counts_a_strict_hit_even_when_unsupported():
    scores = citation_scores([("d", 0, 10)], [False], [False], [("d", 5, 6)])
    assert scores["precision_strict"] == 1.0 and scores["precision_lenient"] == 1.0
    assert scores["recall"] == 0.0
    assert scores["gold_cited"] == 1.0


def test_no_citations_leave_precision_none():
    scores = citation_scores([], [], [False, False], [("d", 0, 10)])
    assert scores["precision_strict"] is None
    assert scores["precision_lenient"] is None
    assert scores["recall"] == 0.0
    assert scores["gold_cited"] == 0.0


def test_no_gold_and_no_sentences_leave_recall_and_gold_cited_none():
    scores = citation_scores([("d", 0, 10)], [True], [], [])
    assert scores["precision_strict"] == 0.0 and scores["precision_lenient"] == 1.0
    assert scores["precision_strict_answerable"] is None  # an unanswerable question: wrong, but not counted there
    assert scores["recall"] is None and scores["gold_cited"] is None


# ---- percentile ---------------------------------------------------------------


def test_nearest_rank_percentile():
    values = list(range(10, 0, -1))  # unsorted on purpose
    assert percentile(values, 50) == 5
    assert percentile(values, 95) == 10
    assert percentile(values, 100) == 10
    assert percentile(values, 10) == 1
    assert percentile(values, 0) == 1
    assert percentile([7.5], 95) == 7.5


def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None
    assert percentile([], 95) is None


def test_nearest_rank_is_exact_when_p_times_n_is_a_whole_rank():
    assert percentile(list(range(1, 101)), 55) == 55
    assert percentile(list(range(1, 26)), 28) == 7


# ---- aggregate ----------------------------------------------------------------


def test_aggregate_ignores_none_and_counts_rows():
    rows = [{"a": 1.0, "b": None}, {"a": 0.0, "b": 0.5}, {"a": 0.5, "b": None}]
    out = aggregate(rows)
    assert out["a"] == 0.5
    assert out["b"] == 0.5
    assert out["n"] == 3


def test_aggregate_with_keys_missing_in_some_rows():
    rows = [{"a": 1.0}, {"b": 0.25}, {"a": 0.0, "b": 0.75}]
    out = aggregate(rows)
    assert out == {"a": 0.5, "b": 0.5, "n": 3}


def test_aggregate_key_never_set_is_none_and_rounds_to_four_places():
    out = aggregate([{"a": None, "c": 1.0}, {"a": None, "c": 0.0}, {"c": 0.0}])
    assert out["a"] is None
    assert out["c"] == 0.3333
    assert list(out) == ["a", "c", "n"]


def test_aggregate_of_no_rows():
    assert aggregate([]) == {"n": 0}


# ---- decisions ------------------------------------------------------------------


def row(kind: str, answerable: bool, answered: bool, must_include: float | None = None,
        fully_covered: float | None = None) -> dict:
    return {"type": kind, "answerable": answerable, "answered": answered, "must_include": must_include,
            "fully_covered": fully_covered}


#: 12 hand-made outcomes over four gold types, one of them mixed.
ROWS = [
    row("factoid", True, True, 1.0, 1.0),
    row("factoid", True, True, 0.0, 0.0),  # answered, misses every group: wrong
    row("factoid", True, False, 0.0, 0.0),  # false refusal
    row("factoid", True, True, 0.5, 0.0),  # partly covered: not wrong, not covered
    row("unanswerable", False, False),
    row("unanswerable", False, True),  # confidently wrong
    row("unanswerable", False, False),
    row("unanswerable", False, False),
    row("near-miss", True, False, 0.0, 0.0),  # a mixed type: answerable refused (wrong decision)
    row("near-miss", False, False),  # unanswerable refused (right)
    row("near-miss", False, True),  # unanswerable answered (wrong, confidently)
    row("why", True, True, None, None),  # answerable without must_include groups
]


def test_the_decision_is_right_when_answering_matches_answerability():
    assert decision_correct(True, True) and decision_correct(False, False)
    assert not decision_correct(True, False) and not decision_correct(False, True)


def test_every_gold_type_gets_a_decision_row_with_its_counts():
    table = decisions(ROWS)
    assert list(table["by_type"]) == ["factoid", "near-miss", "unanswerable", "why"]
    assert table["by_type"]["factoid"] == {"n": 4, "answerable_n": 4, "answerable": True, "answered": 0.75,
                                           "correct": 0.75}  # 1 − false refusal 1/4
    assert table["by_type"]["unanswerable"] == {"n": 4, "answerable_n": 0, "answerable": False, "answered": 0.25,
                                                "correct": 0.75}  # the refusal rate, 3/4
    assert table["by_type"]["near-miss"] == {"n": 3, "answerable_n": 1, "answerable": "mixed",
                                             "answered": 0.3333, "correct": 0.3333}
    assert table["by_type"]["why"] == {"n": 1, "answerable_n": 1, "answerable": True, "answered": 1.0,
                                       "correct": 1.0}
    # overall: right decisions 3 + 3 + 1 + 1 = 8 of 12
    assert table["overall"] == {"n": 12, "answerable_n": 6, "answerable": "mixed", "answered": 0.5,
                                "correct": 0.6667}


def test_decision_correct_is_the_refusal_rate_and_one_minus_false_refusal():
    unanswerable = [row("u", False, answered) for answered in (False, False, True, False, True)]
    assert decisions(unanswerable)["by_type"]["u"]["correct"] == 0.6  # refused 3 of 5
    answerable = [row("a", True, answered, 1.0, 1.0) for answered in (True, False, False, False)]
    assert decisions(answerable)["by_type"]["a"]["correct"] == 0.25  # false refusal 0.75


def test_confidently_wrong_rates():
    table = decisions(ROWS)
    assert table["unanswerable_n"] == 6
    assert table["confidently_wrong"] == 0.3333  # 2 of 6 unanswerable questions answered
    assert table["answered_n"] == 6
    # answered: 3 factoid (one misses every group) + 1 unanswerable + 1 near-miss unanswerable + 1 why
    assert table["wrong_among_answered"] == 0.5


def test_confidently_wrong_is_none_without_unanswerable_or_answered_questions():
    only_answerable = decisions([row("f", True, True, 1.0, 1.0)])
    assert only_answerable["confidently_wrong"] is None and only_answerable["unanswerable_n"] == 0
    assert only_answerable["wrong_among_answered"] == 0.0
    nothing_answered = decisions([row("u", False, False), row("f", True, False, 0.0, 0.0)])
    assert nothing_answered["wrong_among_answered"] is None and nothing_answered["answered_n"] == 0
    assert nothing_answered["confidently_wrong"] == 0.0
    assert decisions([]) == {"by_type": {}, "overall": {"n": 0, "answerable_n": 0, "answerable": None,
                                                        "answered": None, "correct": None},
                             "confidently_wrong": None, "unanswerable_n": 0, "wrong_among_answered": None,
                             "answered_n": 0}


def test_wrongly_answered_and_covered_answer():
    assert wrongly_answered(row("u", False, True)) and not wrongly_answered(row("u", False, False))
    assert wrongly_answered(row("f", True, True, 0.0, 0.0))
    assert not wrongly_answered(row("f", True, True, 0.5, 0.0))  # partly covered is not "wrong"
    assert not wrongly_answered(row("f", True, False, 0.0, 0.0))  # a refusal is never a wrong answer
    assert not wrongly_answered(row("f", True, True, None, None))
    assert covered_answer(row("f", True, True, 1.0, 1.0))
    assert covered_answer(row("f", True, True, None, None))  # no groups to miss
    assert not covered_answer(row("f", True, True, 0.5, 0.0))
    assert not covered_answer(row("f", True, False, 1.0, 1.0))  # refused
    assert not covered_answer(row("u", False, False))  # a right refusal is still not a covered answer
    assert not covered_answer(row("u", False, True))


# ---- calibration ----------------------------------------------------------------


def test_calibration_bins_ece_and_brier_on_hand_made_confidences():
    pairs = [(0.0, False), (0.05, True), (0.3, True), (0.9, True), (1.0, True), (0.95, False), (None, True)]
    out = calibration(pairs)
    assert out["n"] == 6 and out["left_out"] == 1 and out["note"] is None
    bins = out["bins"]
    assert len(bins) == 10
    assert [(b["lo"], b["hi"]) for b in bins] == [(i / 10, (i + 1) / 10) for i in range(10)]
    assert [b["n"] for b in bins] == [2, 0, 0, 1, 0, 0, 0, 0, 0, 3]  # 0.3 is in [0.3, 0.4); 1.0 in the last
    assert bins[0]["mean_confidence"] == 0.025 and bins[0]["accuracy"] == 0.5
    assert bins[3]["mean_confidence"] == 0.3 and bins[3]["accuracy"] == 1.0
    assert bins[9]["mean_confidence"] == 0.95 and bins[9]["accuracy"] == 0.6667
    assert bins[1]["mean_confidence"] is None and bins[1]["accuracy"] is None
    # ECE = (2·|0.5 − 0.025| + 1·|1 − 0.3| + 3·|2/3 − 0.95|) / 6 = 2.5 / 6
    assert out["ece"] == pytest.approx(2.5 / 6, abs=1e-4)
    # Brier = (0 + 0.95² + 0.7² + 0.1² + 0 + 0.95²) / 6
    assert out["brier"] == pytest.approx((0.9025 + 0.49 + 0.01 + 0.9025) / 6, abs=1e-4)


def test_perfectly_calibrated_confidences_have_zero_ece():
    pairs = [(0.25, True), (0.25, False), (0.25, False), (0.25, False), (0.75, True), (0.75, True), (0.75, True),
             (0.75, False)]
    out = calibration(pairs)
    assert out["ece"] == 0.0
    assert out["brier"] == pytest.approx(0.1875)  # (0.75² + 3·0.25²) / 4 per half


def test_overconfident_answers_have_a_large_ece():
    out = calibration([(0.99, False)] * 9 + [(0.99, True)])
    assert out["ece"] == pytest.approx(0.89)
    assert out["bins"][9]["accuracy"] == 0.1


def test_bin_edges_fall_in_the_upper_bin():
    for k in range(10):
        out = calibration([(k / 10, True)])
        assert [b["n"] for b in out["bins"]].index(1) == k, k
    assert calibration([(0.0999, True)])["bins"][0]["n"] == 1


def test_calibration_without_confidences_says_so():
    out = calibration([(None, True), (None, False)])
    assert out["n"] == 0 and out["left_out"] == 2
    assert out["ece"] is None and out["brier"] is None
    assert out["note"] == "no item carries a confidence"
    assert all(b["n"] == 0 and b["accuracy"] is None for b in out["bins"])
    assert calibration([])["n"] == 0


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), float("inf")])
def test_a_confidence_outside_zero_to_one_is_an_error(bad):
    with pytest.raises(ValueError, match="not a probability"):
        calibration([(0.5, True), (bad, True)])
