"""Decision accuracy per gold type, confidently-wrong rates, calibration, the report and the printed
summary, on hand-made per-item rows (fast tier: no model, no index)."""

from __future__ import annotations

import base64
import re
from types import SimpleNamespace

import pytest

from eval.gold import GoldItem
from eval.report import SELF_JUDGED, decision_table, render_report
from eval.runner import System, score_item, summarise
from rag.types import Answer, Timings

TIMINGS = {"retrieve": 1.0, "generate": 2.0, "verify": 1.0, "total": 4.0}


def item(n: int, kind: str, answerable: bool, answered: bool, confidence: float | None,
         coverage: float | None = None) -> dict:
    """A per-item row as ``score_item`` writes it; ``coverage`` is the share of must_include groups covered."""
    if answerable:
        answer = {"must_include": coverage, "fully_covered": None if coverage is None else float(coverage == 1.0),
                  "false_refusal": float(not answered), "refusal_correct": None}
    else:
        answer = {"must_include": None, "fully_covered": None, "false_refusal": None,
                  "refusal_correct": float(not answered)}
    scores: dict = {"answer": answer}
    if answered:
        scores["citations"] = {"precision_strict": 0.5, "precision_lenient": 1.0, "recall": 1.0, "gold_cited": 0.5,
                               "quote_chars": 100.0, "chunk_chars": 400.0}
        scores["faithfulness"] = {"supported_sentences": 1.0}
    failed = answered != answerable or (answerable and coverage == 0.0)
    return {"id": f"q{n:02d}", "type": kind, "question": f"question {n}?", "answerable": answerable,
            "answered": answered, "answer": "an answer" if answered else "The sources do not answer this question.",
            "retrieved": [], "citations": [], "timings_ms": dict(TIMINGS), "confidence": confidence,
            "scores": scores, "failed": failed, "why": "hand-made failure" if failed else ""}


#: 10 items over three gold types; outcome y (answerable, answered, fully covered) noted per item.
ITEMS = [
    item(1, "factoid", True, True, 0.95, 1.0),  # y = 1
    item(2, "factoid", True, True, 0.85, 0.5),  # y = 0: partly covered
    item(3, "factoid", True, False, 0.35, 0.0),  # y = 0: refused (false refusal)
    item(4, "factoid", True, True, 0.91, 0.0),  # y = 0: answered, misses every group (wrong)
    item(5, "unanswerable", False, False, 0.05),  # y = 0 although the refusal is right
    item(6, "unanswerable", False, True, 0.8),  # y = 0: confidently wrong
    item(7, "unanswerable", False, False, 0.15),
    item(8, "unanswerable", False, False, None),  # no confidence: left out of calibration
    item(9, "multi-doc", True, True, 0.99, 1.0),  # y = 1
    item(10, "multi-doc", True, False, 0.02, 0.0),  # y = 0
]


def result_of(items: list[dict], baseline_items: list[dict] | None = None) -> dict:
    return {"system": {"name": "rag-cited", "mode": "extractive"}, "gold": "hand-made.jsonl", "gold_problems": [],
            "metrics": summarise(items), "items": items,
            "baseline": summarise(baseline_items) if baseline_items else None,
            "baseline_items": baseline_items or []}


def png_images(page: str) -> dict[str, bytes]:
    return {alt: base64.b64decode(data)
            for alt, data in re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', page)}


# ---- summarise: the new metric blocks -----------------------------------------------


def test_every_gold_type_has_a_decision_row():
    decisions = summarise(ITEMS)["decisions"]
    assert decisions["by_type"] == {
        "factoid": {"n": 4, "answerable_n": 4, "answerable": True, "answered": 0.75, "correct": 0.75},
        "multi-doc": {"n": 2, "answerable_n": 2, "answerable": True, "answered": 0.5, "correct": 0.5},
        "unanswerable": {"n": 4, "answerable_n": 0, "answerable": False, "answered": 0.25, "correct": 0.75},
    }
    assert decisions["overall"] == {"n": 10, "answerable_n": 6, "answerable": "mixed", "answered": 0.5,
                                    "correct": 0.7}


def test_the_existing_keys_stay_and_agree_with_the_decisions():
    metrics = summarise(ITEMS)
    assert metrics["refusal"]["accuracy"] == metrics["decisions"]["by_type"]["unanswerable"]["correct"] == 0.75
    assert metrics["answer"]["false_refusal"] == pytest.approx(2 / 6, abs=1e-4)
    assert 1 - metrics["answer"]["false_refusal"] == pytest.approx(
        (metrics["decisions"]["by_type"]["factoid"]["correct"] * 4
         + metrics["decisions"]["by_type"]["multi-doc"]["correct"] * 2) / 6, abs=1e-4)
    assert set(metrics["by_type"]) == {"factoid", "multi-doc", "unanswerable"}
    assert "decisions" not in metrics["by_type"]["factoid"]


def test_confidently_wrong_rates_from_rows():
    decisions = summarise(ITEMS)["decisions"]
    assert decisions["confidently_wrong"] == 0.25 and decisions["unanswerable_n"] == 4  # q06 of 4
    assert decisions["wrong_among_answered"] == 0.4 and decisions["answered_n"] == 5  # q04, q06 of 5


def test_calibration_pairs_confidence_with_a_covered_answer():
    calibration = summarise(ITEMS)["calibration"]
    assert calibration["n"] == 9 and calibration["left_out"] == 1
    assert calibration["outcome"] == "answerable, answered, and every must_include group covered"
    by_bin = {b["lo"]: b for b in calibration["bins"] if b["n"]}
    assert {lo: b["n"] for lo, b in by_bin.items()} == {0.0: 2, 0.1: 1, 0.3: 1, 0.8: 2, 0.9: 3}
    assert by_bin[0.0]["accuracy"] == 0.0  # q05 (a right refusal) and q10: neither is a covered answer
    assert by_bin[0.8]["accuracy"] == 0.0 and by_bin[0.8]["mean_confidence"] == 0.825
    assert by_bin[0.9]["accuracy"] == 0.6667 and by_bin[0.9]["mean_confidence"] == 0.95  # q01, q04, q09
    gaps = {0.0: 2 * 0.035, 0.1: 0.15, 0.3: 0.35, 0.8: 2 * 0.825, 0.9: 3 * abs(2 / 3 - 0.95)}
    assert calibration["ece"] == pytest.approx(sum(gaps.values()) / 9, abs=1e-4)
    squared = [(0.95 - 1) ** 2, 0.85 ** 2, 0.35 ** 2, 0.91 ** 2, 0.05 ** 2, 0.8 ** 2, 0.15 ** 2, (0.99 - 1) ** 2,
               0.02 ** 2]
    assert calibration["brier"] == pytest.approx(sum(squared) / 9, abs=1e-4)


def test_calibration_without_any_confidence_has_n_zero():
    rows = [dict(r, confidence=None) for r in ITEMS]
    calibration = summarise(rows)["calibration"]
    assert calibration["n"] == 0 and calibration["left_out"] == 10
    assert calibration["ece"] is None and calibration["brier"] is None
    assert calibration["note"] == "no item carries a confidence"


# ---- score_item: the per-item row carries the confidence -----------------------------


class _Checker:
    def check(self, sentence, hit):
        return None


@pytest.mark.parametrize("confidence", [0.42, None])
def test_items_carry_the_answer_confidence(confidence):
    answer = Answer(question="q?", answer="The sources do not answer this question.", answerable=False,
                    sentences=[], citations=[], mode="extractive", timings_ms=Timings(total=3.0),
                    confidence=confidence)
    system = System("fake", lambda q, k: SimpleNamespace(hits=[]), lambda q: answer, lambda chunk_id: None)
    gold = GoldItem(id="g1", question="q?", answer="", must_include=[], sources=[], type="unanswerable",
                    answerable=False)
    row = score_item(gold, system, _Checker())
    assert row["confidence"] == confidence
    assert summarise([row])["calibration"]["n"] == (0 if confidence is None else 1)

# ---- the report -----------------------------------------------------------------------

BASELINE_ITEMS = [dict(r, answered=True, confidence=0.6) if r["type"] == "unanswerable" else r for r in ITEMS]


def test_decision_table_lists_every_type_and_both_systems():
    result = result_of(ITEMS, BASELINE_ITEMS)
    rows = decision_table(result["metrics"], result["baseline"])
    assert rows == [("factoid", 4, "yes", 0.75, 0.75), ("multi-doc", 2, "yes", 0.5, 0.5),
                    ("unanswerable", 4, "no", 0.75, 0.0), ("all", 10, "6 of 10", 0.7, 0.4)]
    assert [r[4] for r in decision_table(result["metrics"], None)] == [None] * 4


def test_report_has_the_calibration_plot_the_decision_table_and_self_judged_labels():
    result = result_of(ITEMS, BASELINE_ITEMS)
    page = render_report(result)
    images = png_images(page)
    assert set(images) == {"quality chart", "latency chart", "calibration plot"}
    assert all(data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000 for data in images.values())
    table = page[page.index('<table id="decisions">'):]
    table = table[:table.index("</table>")]
    for kind, n, answerable, correct, base in [("factoid", 4, "yes", "0.750", "0.750"),
                                               ("multi-doc", 2, "yes", "0.500", "0.500"),
                                               ("unanswerable", 4, "no", "0.750", "0.000"),
                                               ("all", 10, "6 of 10", "0.700", "0.400")]:
        assert (f"<tr><td>{kind}</td><td>{n}</td><td>{answerable}</td><td>{correct}</td><td>{base}</td></tr>"
                in table), kind
    assert "<th>baseline</th>" in table
    wrong = page[page.index('<table id="confidently-wrong">'):]
    assert "confidently wrong: unanswerable questions answered (of 4)</td><td>0.250</td><td>1.000</td>" in wrong
    assert "missing every must_include group</td><td>0.400</td><td>0.625</td>" in wrong  # 5 of 8 answered
    for name in SELF_JUDGED:
        assert f"<tr><td>{name} (self-judged)</td>" in page, name
        assert f"<tr><td>{name}</td>" not in page, name
    assert page.index("<h2>Self-judged metrics</h2>") > page.index("<td>citations.precision_strict</td>")
    assert "<tr><td>citations.precision_strict</td>" in page  # gold-based: no label
    assert "ECE" in page and "Brier" in page


def test_report_without_baseline_or_confidences():
    result = result_of([dict(r, confidence=None) for r in ITEMS])
    page = render_report(result)
    assert set(png_images(page)) == {"quality chart", "latency chart"}
    assert "No item carries a confidence" in page
    table = page[page.index('<table id="decisions">'):]
    table = table[:table.index("</table>")]
    assert "<th>baseline</th>" not in table
    assert "<tr><td>unanswerable</td><td>4</td><td>no</td><td>0.750</td></tr>" in table


def test_report_plots_the_baseline_calibration_alone_when_only_it_has_confidences():
    result = result_of([dict(r, confidence=None) for r in ITEMS], BASELINE_ITEMS)
    assert "calibration plot" in png_images(render_report(result))


# ---- gates on the new metrics -------------------------------------------------------------


def test_gates_on_wrong_answers_and_calibration_error_are_maxima():
    from eval.suite import metric_value, unmet_gates

    metrics = summarise(ITEMS)
    assert metric_value(metrics, "decisions.by_type.unanswerable.correct") == 0.75
    assert unmet_gates(metrics, [("decisions.by_type.unanswerable.correct", 0.7)]) == []  # a minimum
    assert unmet_gates(metrics, [("decisions.by_type.unanswerable.correct", 0.8)])
    for name, value in (("decisions.confidently_wrong", 0.25), ("decisions.wrong_among_answered", 0.4),
                        ("calibration.ece", metrics["calibration"]["ece"]),
                        ("calibration.brier", metrics["calibration"]["brier"])):
        assert unmet_gates(metrics, [(name, value + 0.01)]) == [], name
        (line,) = unmet_gates(metrics, [(name, value - 0.01)])
        assert "above the maximum" in line, name
