"""Fit the answerability model (``rag/assets/answerability.json``) from labelled data.

    python -m eval.calibrate                      # the default gold sets, writes the asset
    python -m eval.calibrate --check              # fit again and compare with the stored asset

Training data, made without writing a question by hand:

* every gold question of each set, asked of that set's corpus: a candidate
  sentence is positive when it overlaps a gold quote; every candidate of an
  unanswerable question is negative;
* *held-out-article* negatives: each answerable question asked again of the
  same corpus without the article(s) its gold quotes come from (a copy of the
  index with those documents removed), where nothing can answer it.

Validation is grouped by article (a question's group is the article of its
gold quotes, or of its best retrieved passage when it has none), so no
figure is measured on an article the model was fitted on. The sentence model
is a standardised logistic regression (scikit-learn); the answer confidence
is Platt scaling of the best sentence's out-of-fold logit against "this
question is answerable here and its answer holds a sentence that answers it"
(the best sentence, or the runner-up the extractive answer adds when it is
close), fitted on the gold questions alone. The made negatives teach the
sentence model what does not answer, but their number is an artefact of how they are made (two per
answerable question): calibrated on them too, confidence would follow a mix
of three unanswerable questions to one, and understate every real answer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Protocol

import numpy as np

from eval.gold import GoldItem, load_gold, locate_sources
from eval.metrics import calibration
from rag.answerability.features import FEATURES
from rag.answerability.model import MODEL_PATH, AnswerabilityModel
from rag.settings import REPO_ROOT, AnswerSettings, Settings
from rag.text import STOPWORDS, content_terms, stem, words

if TYPE_CHECKING:
    from index.docstore import StoredDocument

SHARED = REPO_ROOT.parent / "shared" / "eval"
DEFAULT_SETS = (
    ("news-dev", REPO_ROOT / "eval" / "data" / "gold_dev.jsonl", REPO_ROOT / "data" / "corpus"),
    ("squad", SHARED / "squad" / "gold.jsonl", SHARED / "squad" / "corpus"),
)
FOLDS = 5
HELD_OUT = "held-out-article"
SWAPPED = "swapped-term"
MADE_NEGATIVES = (HELD_OUT, SWAPPED)
RUNNER_UP_SHARE = AnswerSettings.model_fields["runner_up_share"].default  # as the extractive answer uses it
#: Regularisation strength of the sentence model (scikit-learn's C), chosen by grouped cross-validation.
C = 1.0


@dataclass
class Row:
    set: str
    qid: str
    kind: str  # the gold type, or "held-out-article"
    group: str  # the article: what cross-validation splits by
    answerable: bool
    label: int  # this sentence answers the question
    features: list[float]
    text: str


# ---- collecting ----------------------------------------------------------------


def _service(settings: Settings, data_dir: Path):
    from index.service import RagService

    return RagService(settings.model_copy(update={"data_dir": data_dir}))


def _rows_for(service, set_name: str, item: GoldItem, kind: str, answerable: bool, group: str | None,
              top_k: int) -> list[Row]:
    retrieval = service.retrieve(item.question, top_k)
    # every candidate featurised by the service's own judge, in passage order (the order the rows were fitted in)
    candidates = sorted(service.assess(item.question, retrieval).candidates, key=lambda c: (c.hit_index, c.start))
    if group is None:
        group = retrieval.hits[0].doc_id if retrieval.hits else "(none)"
    rows = []
    for c in candidates:
        positive = answerable and any(doc == c.doc_id and s < c.end and c.start < e for doc, s, e in item.spans)
        rows.append(Row(set_name, item.id, kind, f"{set_name}:{group}", answerable, int(positive),
                        [c.features[f] for f in FEATURES], c.text))
    if not rows:  # nothing retrieved: one all-zero row keeps the question in the answer-level data
        rows.append(Row(set_name, item.id, kind, f"{set_name}:{group}", answerable, 0, [0.0] * len(FEATURES), ""))
    return rows


def collect(settings: Settings, sets=DEFAULT_SETS, work_dir: Path | None = None,
            progress: bool = True) -> list[Row]:
    """Every candidate sentence of every question, featurised and labelled.

    The indexes are built afresh in a temporary directory unless ``work_dir`` names one to reuse: an index kept
    from earlier runs (grown by other code versions) retrieves slightly different near-tie candidates, and a
    model fitted from one differed from a fresh refit by 0.036 in confidence (fresh builds differ by 0.010–0.021).
    """
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="calibrate-") as fresh:
            return collect(settings, sets, Path(fresh), progress)
    from tqdm import tqdm

    work_dir = Path(work_dir)
    top_k = settings.retrieve.top_k
    rows: list[Row] = []
    for set_name, gold_path, corpus in sets:
        items = load_gold(Path(gold_path))
        digest = hashlib.sha1(str(Path(corpus).resolve()).encode()).hexdigest()[:8]
        data_dir = work_dir / f"{set_name}-{digest}"
        service = _service(settings, data_dir)
        service.ingest(Path(corpus), progress=progress)
        problems = locate_sources(items, service.text_of)
        if problems:
            raise SystemExit(f"{gold_path}: gold quotes not found: {problems[:3]}")
        for item in tqdm(items, desc=f"{set_name} questions", disable=not progress, leave=False):
            group = item.sources[0].doc if item.sources else None
            rows += _rows_for(service, set_name, item, item.type, item.answerable, group, top_k)
        for item in tqdm(items, desc=f"{set_name} swapped terms", disable=not progress, leave=False):
            swapped = swapped_question(item, service)
            if swapped is not None:
                rows += _rows_for(service, set_name, swapped, SWAPPED, False, item.sources[0].doc, top_k)
        doc_ids = [d.doc_id for d in service.documents()]
        service.close()
        for doc_id in tqdm(doc_ids, desc=f"{set_name} held-out articles", disable=not progress, leave=False):
            asked = [i for i in items if i.answerable and i.sources and {s.doc for s in i.sources} == {doc_id}]
            if not asked:
                continue
            with _index_without(settings, data_dir, doc_id) as held_out:
                for item in asked:
                    rows += _rows_for(held_out, set_name, item, HELD_OUT, False, doc_id, top_k)
    return rows


class Corpus(Protocol):
    """What :func:`swapped_question` reads of an index (a :class:`RagService`, or a bare docstore in tests)."""

    def text_of(self, doc_id: str) -> str | None: ...

    def documents(self) -> list[StoredDocument]: ...

    def term_document_counts(self, terms: list[str], cap: int = 1000) -> dict[str, int]: ...


def swapped_question(item: GoldItem, corpus: Corpus) -> GoldItem | None:
    """The question with its most distinctive word that its gold quote holds replaced by a word of
    another article that its own article never uses: it now asks about something the corpus does not say
    (SQuAD's adversarial questions are made the same way, by hand)."""
    if not item.answerable or not item.sources:
        return None
    own_id = item.sources[0].doc
    own_text = corpus.text_of(own_id)
    if not own_text:
        return None
    own_terms = set(content_terms(own_text))
    quoted = {t for s in item.sources for t in content_terms(s.quote)}
    raw = [w for w in dict.fromkeys(words(item.question)) if w not in STOPWORDS and len(w) > 2]
    counts = corpus.term_document_counts(raw)
    key = [w for w in raw if stem(w) in quoted]
    if not key:
        return None
    target = min(key, key=lambda w: (counts.get(w, 0), w))
    others = sorted(d.doc_id for d in corpus.documents() if d.doc_id != own_id)
    if not others:
        return None
    seed = int(hashlib.sha1(item.id.encode()).hexdigest(), 16)
    other_text = corpus.text_of(others[seed % len(others)])
    capitalised = bool(re.search(rf"\b{re.escape(target[:1].upper() + target[1:])}\b", item.question))
    shaped = sorted({w for w in re.findall(r"[^\W\d_]{5,}", other_text or "")
                     if w[0].isupper() == capitalised and w.lower() not in STOPWORDS
                     and stem(w.lower()) not in own_terms})
    rare = corpus.term_document_counts(shaped, cap=3)
    pool = [w for w in shaped if rare.get(w, 3) <= 2]
    if not pool:
        return None
    replacement = pool[seed % len(pool)]
    question = re.sub(rf"\b{re.escape(target)}\b", replacement, item.question, count=1, flags=re.IGNORECASE)
    if question == item.question:
        return None
    return GoldItem(id=f"{item.id}-swapped", question=question, answer="", must_include=[], sources=[],
                    type=SWAPPED, answerable=False)


class _index_without:
    """A throw-away copy of an index with one document removed."""

    def __init__(self, settings: Settings, data_dir: Path, doc_id: str) -> None:
        self.settings, self.data_dir, self.doc_id = settings, data_dir, doc_id

    def __enter__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="calibrate-"))
        shutil.copytree(self.data_dir, self.tmp / "data")
        self.service = _service(self.settings, self.tmp / "data")
        self.service.delete_document(self.doc_id)
        return self.service

    def __exit__(self, *exc) -> None:
        self.service.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- fitting -------------------------------------------------------------------


def _arrays(rows: list[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.array([r.features for r in rows], dtype=np.float64)
    y = np.array([r.label for r in rows], dtype=np.int64)
    groups = np.array([r.group for r in rows])
    return x, y, groups


def fit_sentence_model(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=C, max_iter=2000)
    model.fit((x - mean) / scale, y)
    return {"features": list(FEATURES), "mean": mean.round(6).tolist(), "scale": scale.round(6).tolist(),
            "coef": model.coef_[0].round(6).tolist(), "intercept": round(float(model.intercept_[0]), 6)}


def _logits(sentence_model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    return ((x - np.array(sentence_model["mean"])) / np.array(sentence_model["scale"])) @ np.array(
        sentence_model["coef"]) + sentence_model["intercept"]


def _questions(rows: list[Row], logits: np.ndarray) -> list[dict[str, Any]]:
    """Per question: its best sentence's logit, whether that sentence answers it, and the same of the runner-up
    (the extractive answer gives both when they are close)."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row, z in zip(rows, logits):
        key = (row.set, row.qid, row.kind)
        q = out.setdefault(key, {"set": row.set, "qid": row.qid, "kind": row.kind, "group": row.group,
                                 "answerable": row.answerable, "best": -np.inf, "best_label": 0,
                                 "second": -np.inf, "second_label": 0, "any_positive": 0})
        q["any_positive"] |= row.label
        if z > q["best"]:
            q["second"], q["second_label"] = q["best"], q["best_label"]
            q["best"], q["best_label"] = float(z), row.label
        elif z > q["second"]:
            q["second"], q["second_label"] = float(z), row.label
    return list(out.values())


def is_gold(question: dict[str, Any]) -> bool:
    """A question of a gold file, as opposed to a made negative."""
    return question["kind"] not in MADE_NEGATIVES


def _answer_answers(question: dict[str, Any]) -> bool:
    """The extractive answer holds a sentence that answers: the best one, or a runner-up close enough to join it."""
    if question["best_label"]:
        return True
    second = question.get("second", -np.inf)
    return bool(question.get("second_label")) and _sigmoid(second) >= RUNNER_UP_SHARE * _sigmoid(question["best"])


def _sigmoid(z: float) -> float:
    return float(1 / (1 + np.exp(-z))) if np.isfinite(z) else 0.0


def _outcome(question: dict[str, Any]) -> int:
    return int(question["answerable"] and _answer_answers(question))


def fit_answer_calibration(questions: list[dict[str, Any]]) -> dict[str, float]:
    """Platt scaling of the best sentence's logit, on the gold questions: their own mix of answerable and
    unanswerable ones (all questions only where the gold ones hold a single outcome)."""
    from sklearn.linear_model import LogisticRegression

    gold = [q for q in questions if is_gold(q)]
    if len({_outcome(q) for q in gold}) == 2:
        questions = gold
    z = np.array([[q["best"]] for q in questions])
    y = np.array([_outcome(q) for q in questions])
    model = LogisticRegression(C=100.0, max_iter=1000).fit(z, y)
    return {"slope": round(float(model.coef_[0][0]), 6), "intercept": round(float(model.intercept_[0]), 6)}


def out_of_fold_logits(rows: list[Row], folds: int = FOLDS) -> np.ndarray:
    """Every sentence's logit from a model fitted without its article."""
    from sklearn.model_selection import GroupKFold

    x, y, groups = _arrays(rows)
    logits = np.zeros(len(rows))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        logits[test] = _logits(fit_sentence_model(x[train], y[train]), x[test])
    return logits


def _out_of_fold_confidences(questions: list[dict[str, Any]]) -> np.ndarray:
    """Each question's confidence from an answer calibration fitted without its article."""
    from sklearn.model_selection import GroupKFold

    groups = np.array([q["group"] for q in questions])
    conf = np.zeros(len(questions))
    for train, test in GroupKFold(n_splits=FOLDS).split(groups, groups, groups):
        cal = fit_answer_calibration([questions[i] for i in train])
        for i in test:
            conf[i] = 1 / (1 + np.exp(-(cal["slope"] * questions[i]["best"] + cal["intercept"])))
    return conf


def cross_validated_report(rows: list[Row], logits: np.ndarray, threshold: float) -> dict[str, Any]:
    """Grouped out-of-fold figures: decisions per kind at ``threshold``, top-sentence precision, AUC."""
    from sklearn.metrics import roc_auc_score

    questions = _questions(rows, logits)
    conf = _out_of_fold_confidences(questions)
    by_kind: dict[str, dict[str, Any]] = {}
    for q, c in zip(questions, conf):
        k = f"{q['set']}/{q['kind']}"
        d = by_kind.setdefault(k, {"n": 0, "answerable": q["answerable"], "correct": 0, "top_sentence_answers": 0})
        d["n"] += 1
        answered = c >= threshold
        d["correct"] += int(answered == q["answerable"])
        d["top_sentence_answers"] += int(q["best_label"])
    for d in by_kind.values():
        d["correct"] = round(d["correct"] / d["n"], 3)
        d["top_sentence_answers"] = round(d["top_sentence_answers"] / d["n"], 3)
    reliability = {}
    for set_name in sorted({q["set"] for q in questions}):
        block = calibration([(float(c), bool(_outcome(q))) for q, c in zip(questions, conf)
                             if q["set"] == set_name and is_gold(q)])
        reliability[set_name] = {"n": block["n"], "ece": block["ece"], "brier": block["brier"]}
    _, y, _ = _arrays(rows)
    return {"threshold": threshold, "sentence_auc": round(float(roc_auc_score(y, logits)), 4),
            "decisions": dict(sorted(by_kind.items())), "calibration": reliability,
            "questions": len(questions), "sentences": len(rows)}


def choose_threshold(rows: list[Row], logits: np.ndarray, max_false_refusal: float = 0.04) -> float:
    """The highest confidence threshold whose out-of-fold false refusals stay within ``max_false_refusal``
    on every gold set's answerable questions (each set counted on its own, so the small one is not drowned)."""
    questions = _questions(rows, logits)
    conf = _out_of_fold_confidences(questions)
    best = 0.01
    for t in np.arange(0.01, 0.951, 0.01):
        within = True
        for set_name in {q["set"] for q in questions}:
            answerable = [c for q, c in zip(questions, conf) if q["set"] == set_name and q["answerable"]]
            if answerable and sum(c < t for c in answerable) / len(answerable) > max_false_refusal:
                within = False
        if within:
            best = round(float(t), 2)
    return best


def fit(rows: list[Row], sets=DEFAULT_SETS) -> dict[str, Any]:
    x, y, _ = _arrays(rows)
    oof = out_of_fold_logits(rows)
    threshold = choose_threshold(rows, oof)
    sentence_model = fit_sentence_model(x, y)
    calibration = fit_answer_calibration(_questions(rows, oof))
    return {
        "version": 1,
        "about": "Answerability model of rag.answerability; fitted by `python -m eval.calibrate`.",
        "trained_on": [{"set": name, "gold": _relative(gold), "corpus": _relative(corpus),
                        "gold_sha1": hashlib.sha1(Path(gold).read_bytes()).hexdigest()[:12]}
                       for name, gold, corpus in sets],
        "negatives": "each answerable question also asked of its corpus without its article(s)",
        "rows": {"sentences": len(rows), "positive": int(y.sum()),
                 "questions": len(_questions(rows, oof))},
        "recommended_threshold": threshold,
        "cross_validated": cross_validated_report(rows, oof, threshold),
        "sentence_model": sentence_model,
        "answer_calibration": calibration,
    }


def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT.parent))
    except ValueError:
        return str(path)


def agreement(a: dict[str, Any], b: dict[str, Any], rows: list[Row]) -> float:
    """Largest difference in confidence between two fitted models over the rows' best sentences."""
    ma, mb = AnswerabilityModel.from_dict(a), AnswerabilityModel.from_dict(b)
    x, _, _ = _arrays(rows)
    za = ((x - ma.mean) / ma.scale) @ ma.coef + ma.intercept
    zb = ((x - mb.mean) / mb.scale) @ mb.coef + mb.intercept
    pa = np.array([ma.answer_confidence(z) for z in za])
    pb = np.array([mb.answer_confidence(z) for z in zb])
    return float(np.abs(pa - pb).max())


def report_lines(report: dict[str, Any]) -> Iterator[str]:
    """What a refit prints: the cross-validated table, each set's calibration, the learnt weights."""
    cv = report["cross_validated"]
    yield (f"{report['rows']['questions']} questions, {report['rows']['sentences']} candidate sentences "
           f"({report['rows']['positive']} answer); grouped {FOLDS}-fold by article")
    yield f"sentence AUC (out of fold): {cv['sentence_auc']}; recommended threshold {report['recommended_threshold']}"
    yield f"{'set/kind':<36}{'n':>5}{'correct decision':>18}{'top sentence answers':>22}"
    for kind, d in cv["decisions"].items():
        yield f"{kind:<36}{d['n']:>5}{d['correct']:>18.3f}{d['top_sentence_answers']:>22.3f}"
    for set_name, d in cv["calibration"].items():
        yield (f"confidence against 'answerable and its answer holds an answering sentence', {set_name} gold questions "
               f"(n={d['n']}): ECE {d['ece']}, Brier {d['brier']}")
    model = report["sentence_model"]
    weights = sorted(zip(model["features"], model["coef"]), key=lambda fw: -abs(fw[1]))
    yield "weights of the standardised features, largest first: " + ", ".join(f"{f} {w:+.2f}" for f, w in weights)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=MODEL_PATH, help="where to write the model (default: the asset)")
    parser.add_argument("--rows", type=Path, help="cache the collected rows here (JSON) and reuse them if present")
    parser.add_argument("--check", action="store_true",
                        help="fit again and compare with the stored asset instead of writing it")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.rows and args.rows.exists():
        rows = [Row(**r) for r in json.loads(args.rows.read_text())]
    else:
        rows = collect(settings, progress=sys.stderr.isatty())
        if args.rows:
            args.rows.parent.mkdir(parents=True, exist_ok=True)
            args.rows.write_text(json.dumps([r.__dict__ for r in rows]))
    report = fit(rows)
    for line in report_lines(report):
        print(line)
    if args.check:
        stored = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
        diff = agreement(stored, report, rows)
        print(f"largest confidence difference from the stored model: {diff:.4f}")
        return 0 if diff <= 0.05 else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
