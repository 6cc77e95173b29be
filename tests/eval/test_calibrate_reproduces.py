"""The stored answerability model is what ``python -m eval.calibrate`` fits today (slow: real model, both sets)."""

from __future__ import annotations

import json

import pytest

from eval.calibrate import DEFAULT_SETS, agreement, collect, fit
from rag.answerability.model import MODEL_PATH
from rag.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def refit(tmp_path_factory):
    missing = [str(gold) for _, gold, corpus in DEFAULT_SETS if not gold.exists() or not corpus.exists()]
    if missing:
        pytest.skip(f"gold sets not found: {missing}")
    settings = Settings(data_dir=tmp_path_factory.mktemp("calibrate"))
    rows = collect(settings, progress=False)
    return rows, fit(rows)


def test_refitting_reproduces_the_stored_model(refit):
    rows, report = refit
    stored = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert report["rows"]["questions"] == stored["rows"]["questions"]  # the same questions, negatives included
    # the same candidate sentences, up to a handful that near-ties in dense retrieval can swap in or out
    assert abs(report["rows"]["sentences"] - stored["rows"]["sentences"]) <= 0.001 * stored["rows"]["sentences"]
    assert abs(report["rows"]["positive"] - stored["rows"]["positive"]) <= 2
    # confidences agree on every collected sentence: the largest difference was 0.010–0.021 over runs (onnxruntime's
    # threaded sums differ in the last bits, which swaps a few near-tie dense candidates and moves the fit a little)
    assert agreement(stored, report, rows) <= 0.03
    assert report["recommended_threshold"] == pytest.approx(stored["recommended_threshold"], abs=0.011)


def test_cross_validated_figures_are_those_documented(refit):
    _, report = refit
    decisions = report["cross_validated"]["decisions"]
    assert report["cross_validated"]["sentence_auc"] >= 0.95
    assert decisions["squad/out-of-corpus"]["correct"] >= 0.85
    assert decisions["squad/squad"]["correct"] >= 0.95  # false refusals stay rare
    # 0.120 before the polarity and degree features, 0.213 with them, 0.267 with a swapped value too
    assert decisions["squad/squad-adversarial"]["correct"] >= 0.23
    assert decisions["news-dev/factoid"]["correct"] >= 0.9
    # questions asked of a corpus without their article: 0.375 (news) and 0.973 (SQuAD) before `unknown_names`
    # left out years, acronyms and typos and kept the things no document mentions; 0.542 and 0.987 with it
    assert decisions["news-dev/held-out-article"]["correct"] >= 0.45
    assert decisions["squad/held-out-article"]["correct"] >= 0.98
    # confidence is calibrated on the gold questions' own mix: out-of-fold ECE on SQuAD's 300 measured 0.045–0.051
    # (0.083 when the made negatives, three unanswerable questions to one, were in the calibration too); 0.072
    # against the outcome that counts a close runner-up (which brought `rag eval`'s ECE 0.077 → 0.066)
    assert report["cross_validated"]["calibration"]["squad"]["ece"] <= 0.08
    assert report["cross_validated"]["calibration"]["news-dev"]["ece"] <= 0.32  # 30 questions: 0.25 (0.37 before)
