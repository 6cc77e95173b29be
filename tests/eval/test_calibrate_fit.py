"""Fitting the answerability model (``eval.calibrate``): fast checks on made-up rows and a tiny corpus."""

from __future__ import annotations

import numpy as np

from eval.calibrate import (HELD_OUT, Row, choose_threshold, cross_validated_report, fit, fit_answer_calibration,
                            fit_sentence_model, out_of_fold_logits, report_lines, swapped_question)
from eval.gold import GoldItem, GoldSource
from index.chunking import chunk_text, text_hash
from index.docstore import DocStore
from rag.answerability.features import FEATURES
from rag.answerability.model import AnswerabilityModel

COVERAGE = FEATURES.index("coverage")


def made_up_rows(seed: int = 0) -> list[Row]:
    """Questions whose answering sentence has high coverage; unanswerable ones have none that does."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(120):
        answerable = q % 3 != 0
        group = f"set:article{q % 10}"
        for s in range(6):
            positive = answerable and s == 0
            features = list(rng.normal(0, 1, len(FEATURES)))
            features[COVERAGE] = rng.normal(3.0 if positive else 0.0, 0.5)
            rows.append(Row("set" if q % 2 else "other", f"q{q}", "kind" if answerable else HELD_OUT, group,
                            answerable, int(positive), features, f"sentence {s}"))
    return rows


def test_the_sentence_model_learns_what_separates_answers():
    rows = made_up_rows()
    x = np.array([r.features for r in rows])
    y = np.array([r.label for r in rows])
    model = fit_sentence_model(x, y)
    coef = dict(zip(model["features"], model["coef"]))
    assert coef["coverage"] > 1.0
    assert all(abs(v) < coef["coverage"] / 3 for k, v in coef.items() if k != "coverage")


def test_out_of_fold_logits_never_see_their_own_article(monkeypatch):
    rows = made_up_rows()
    seen: list[int] = []  # rows each fold's model was fitted on
    import eval.calibrate as calibrate

    real = calibrate.fit_sentence_model

    def spying(x, y):
        seen.append(len(x))
        return real(x, y)

    monkeypatch.setattr(calibrate, "fit_sentence_model", spying)
    out_of_fold_logits(rows)
    assert len(seen) == 5 and all(n < len(rows) for n in seen)
    from sklearn.model_selection import GroupKFold
    groups = np.array([r.group for r in rows])
    for train, test in GroupKFold(n_splits=5).split(groups, groups, groups):
        assert not set(groups[train]) & set(groups[test])


def test_fit_is_reproducible_and_complete():
    rows = made_up_rows()
    a, b = fit(rows, sets=()), fit(rows, sets=())
    assert a["sentence_model"] == b["sentence_model"] and a["answer_calibration"] == b["answer_calibration"]
    model = AnswerabilityModel.from_dict(a)
    assert model.answer_slope > 0 and 0 < model.recommended_threshold < 1
    decisions = a["cross_validated"]["decisions"]
    assert decisions["set/kind"]["correct"] > 0.8 and decisions[f"set/{HELD_OUT}"]["correct"] > 0.8
    # reliability of the out-of-fold confidence, per set, over its gold questions only (made negatives left out)
    reliability = a["cross_validated"]["calibration"]
    assert set(reliability) == {"set", "other"}
    rows = made_up_rows()
    for name, block in reliability.items():
        gold = {r.qid for r in rows if r.set == name and r.kind != HELD_OUT}
        assert block["n"] == len(gold) and 0 <= block["ece"] <= 1 and 0 <= block["brier"] <= 1


def test_threshold_keeps_false_refusals_within_bound_on_every_set():
    rows = made_up_rows()
    logits = out_of_fold_logits(rows)
    threshold = choose_threshold(rows, logits, max_false_refusal=0.04)
    report = cross_validated_report(rows, logits, threshold)
    for name, d in report["decisions"].items():
        if d["answerable"]:
            assert d["correct"] >= 0.96 - 1e-9, (name, d)


def test_swapped_question_asks_for_a_word_its_article_never_uses(tmp_path):
    store = DocStore(tmp_path / "d.sqlite3", "hash:256")
    texts = {"fish.txt": "Portugal proposed a sardine quota in Lisbon. The Harbour Board met twice.\n",
             "rain.txt": "The Meteorological Office counted rainfall in Aberdeen. Farmers waited.\n"}
    for doc_id, text in texts.items():
        store.replace_document(doc_id=doc_id, source_root="t", title=doc_id, date=None, url=None,
                               content_hash=text_hash(text), text=text, chunks=chunk_text(doc_id, text, 40, 1))
    item = GoldItem(id="q1", question="Which country proposed a sardine quota in Lisbon?", answer="Portugal",
                    must_include=[["Portugal"]], sources=[GoldSource("fish.txt", "Portugal proposed a sardine quota")],
                    type="factoid", answerable=True)
    swapped = swapped_question(item, store)
    assert swapped is not None and not swapped.answerable and swapped.type == "swapped-term"
    changed = set(swapped.question.split()) - set(item.question.split())
    assert len(changed) == 1
    (word,) = changed
    assert word.strip("?") in texts["rain.txt"] and word.strip("?").lower() not in texts["fish.txt"].lower()
    unanswerable = GoldItem(id="q2", question="Who won?", answer="", must_include=[], sources=[], type="x",
                            answerable=False)
    assert swapped_question(unanswerable, store) is None
    store.close()


def test_rows_survive_a_json_round_trip(tmp_path):
    import json

    rows = made_up_rows()[:12]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([r.__dict__ for r in rows]))
    assert [Row(**r) for r in json.loads(path.read_text())] == rows


def _question(kind: str, best: float, answerable: bool, label: int) -> dict:
    return {"set": "set", "qid": f"{kind}{best}", "kind": kind, "group": "g", "answerable": answerable,
            "best": best, "best_label": label, "any_positive": label}


def test_answer_calibration_follows_the_gold_questions_not_the_made_negatives():
    rng = np.random.default_rng(1)
    gold = [_question("squad", float(z), True, int(z > -0.5)) for z in rng.normal(1.0, 1.5, 80)]
    gold += [_question("squad-adversarial", float(z), False, 0) for z in rng.normal(-1.0, 1.5, 40)]
    made = [_question(HELD_OUT, float(z), False, 0) for z in rng.normal(-1.0, 1.5, 300)]
    alone, with_made = fit_answer_calibration(gold), fit_answer_calibration(gold + made)
    assert alone == with_made  # hundreds of made negatives do not drag every confidence down
    # the confidence of a middling answer reflects the gold mix (about two answerable questions in three)
    middle = 1 / (1 + np.exp(-(alone["slope"] * 0.0 + alone["intercept"])))
    assert 0.4 < middle < 0.8


def test_the_outcome_counts_a_close_runner_up_that_answers_as_the_answer_does():
    from eval.calibrate import RUNNER_UP_SHARE, _outcome

    def question(best, second, second_label, best_label=0, answerable=True):
        return _question("squad", best, answerable, best_label) | {"second": second, "second_label": second_label}

    p_close = 0.5 * RUNNER_UP_SHARE * 1.2  # against a best logit of 0.0 (p 0.5)
    close, far = float(np.log(p_close / (1 - p_close))), -6.0
    assert _outcome(question(0.0, close, 1)) == 1  # a runner-up close enough to join: the answer gives both
    assert _outcome(question(0.0, far, 1)) == 0  # too far behind to join: the answer is the wrong sentence alone
    assert _outcome(question(0.0, close, 0)) == 0
    assert _outcome(question(0.0, far, 0, best_label=1)) == 1
    assert _outcome(question(0.0, close, 1, answerable=False)) == 0


def test_answer_calibration_uses_every_question_when_the_gold_ones_agree():
    gold = [_question("squad", z, True, 1) for z in (0.5, 1.0, 2.0, 3.0)]
    made = [_question(HELD_OUT, z, False, 0) for z in (-3.0, -2.0, -1.0, 0.0)]
    cal = fit_answer_calibration(gold + made)
    assert cal["slope"] > 0  # fitted (on all eight) rather than failing on a single outcome


def test_a_refit_prints_its_table_calibration_and_weights_largest_first():
    report = fit(made_up_rows(), sets=())
    lines = list(report_lines(report))
    assert any(line.startswith("set/kind") for line in lines)
    assert sum("ECE" in line for line in lines) == 2  # one line per set
    weights = lines[-1].split(": ", 1)[1].split(", ")
    assert weights[0].startswith("coverage ")  # the made-up rows separate on coverage alone
    assert len(weights) == len(FEATURES)
