"""The evaluation as a person reads it: one self-contained HTML page.

A table of every metric for this system beside the baseline (with the
ratio), the metrics judged by the product's own support checker set apart
and labelled "self-judged", the answer-or-refuse decisions per gold type,
bar charts of the main metrics and of latency and a reliability diagram of
the confidences (matplotlib, embedded as PNG), and the failing questions with
their answers and citations.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

MAIN_METRICS = [
    ("retrieval", "recall@5"), ("retrieval", "mrr"), ("retrieval", "ndcg@10"),
    ("answer", "must_include"), ("answer", "fully_covered"), ("refusal", "accuracy"),
    ("citations", "precision_strict"), ("citations", "recall"), ("citations", "gold_cited"),
    ("faithfulness", "supported_sentences"),
]

#: Metrics judged by the product's own support checker (not by the gold set): labelled, never mixed in.
SELF_JUDGED = frozenset({"citations.recall", "citations.precision_lenient", "faithfulness.supported_sentences"})
SELF_JUDGED_SUFFIX = " (self-judged)"
SELF_JUDGED_NOTE = "self-judged: scored by the product's own support checker, not against the gold set"


def is_self_judged(name: str) -> bool:
    return name in SELF_JUDGED


def label(name: str) -> str:
    """A metric's name as shown: self-judged ones carry the suffix " (self-judged)"."""
    return name + SELF_JUDGED_SUFFIX if is_self_judged(name) else name


def _answerable_text(row: dict) -> str:
    kind = row["answerable"]
    return "yes" if kind is True else "no" if kind is False else f"{row['answerable_n']} of {row['n']}"


def decision_table(metrics: dict, baseline: dict | None) -> list[tuple[str, int, str, Any, Any]]:
    """(gold type, n, answerable, share of right decisions, the baseline's share) per gold type, then "all"."""
    mine = metrics.get("decisions") or {"by_type": {}, "overall": None}
    other = (baseline or {}).get("decisions") or {}
    rows = []
    for kind, row in mine["by_type"].items():
        base = (other.get("by_type") or {}).get(kind) or {}
        rows.append((kind, row["n"], _answerable_text(row), row["correct"], base.get("correct")))
    if mine.get("overall"):
        row = mine["overall"]
        base = other.get("overall") or {}
        rows.append(("all", row["n"], _answerable_text(row), row["correct"], base.get("correct")))
    return rows


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _bar_chart(labels: list[str], series: dict[str, list[float]], title: str, ylabel: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.9), 3.6))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=name)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))])
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    data = _png(fig)
    plt.close(fig)
    return data


def _calibration_plot(blocks: dict[str, dict]) -> str:
    """A reliability diagram: per confidence bin, the observed share of covered answers against the mean
    confidence (one line per system), the diagonal of perfect calibration, and the count per bin as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    counts = ax.twinx()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#888", linewidth=1, label="perfectly calibrated")
    width = 0.1 / max(1, len(blocks))
    for i, (name, block) in enumerate(blocks.items()):
        filled = [b for b in block["bins"] if b["n"]]
        ax.plot([b["mean_confidence"] for b in filled], [b["accuracy"] for b in filled], marker="o",
                label=f"{name} (ECE {block['ece']:.3f}, n={block['n']})")
        counts.bar([b["lo"] + i * width for b in block["bins"]], [b["n"] for b in block["bins"]], width,
                   align="edge", alpha=0.15, color=f"C{i}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (mean per bin)")
    ax.set_ylabel("observed: answerable, answered, fully covered")
    counts.set_ylabel("questions per bin (bars)")
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_title("Calibration (reliability diagram)")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    data = _png(fig)
    plt.close(fig)
    return data


def _value(metrics: dict, group: str, key: str) -> float | None:
    return (metrics.get(group) or {}).get(key)


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def metric_rows(metrics: dict, baseline: dict | None) -> list[tuple[str, Any, Any, str]]:
    rows = []
    for group in ("retrieval", "answer", "refusal", "citations", "faithfulness", "drafts"):
        for key, value in (metrics.get(group) or {}).items():
            base = _value(baseline or {}, group, key)
            ratio = f"{value / base:.2f}×" if isinstance(value, (int, float)) and base and key != "n" else ""
            rows.append((f"{group}.{key}", value, base, ratio))
    for stage, figures in metrics.get("latency_ms", {}).items():
        for p, value in figures.items():
            base = (baseline or {}).get("latency_ms", {}).get(stage, {}).get(p)
            ratio = f"{value / base:.2f}×" if value is not None and base else ""
            rows.append((f"latency_ms.{stage}.{p}", value, base, ratio))
    return rows


def render_report(result: dict[str, Any]) -> str:
    metrics, baseline = result["metrics"], result.get("baseline")
    names = [label(f"{g}.{k}") for g, k in MAIN_METRICS]
    series = {result["system"]["name"]: [_value(metrics, g, k) or 0.0 for g, k in MAIN_METRICS]}
    if baseline:
        series["baseline"] = [_value(baseline, g, k) or 0.0 for g, k in MAIN_METRICS]
    quality = _bar_chart(names, series, "Quality (higher is better)", "score")
    stages = ["retrieve", "generate", "verify", "total"]
    lat_series = {f"{result['system']['name']} p50": [metrics["latency_ms"][s]["p50"] or 0 for s in stages],
                  f"{result['system']['name']} p95": [metrics["latency_ms"][s]["p95"] or 0 for s in stages]}
    if baseline:
        lat_series["baseline p50"] = [baseline["latency_ms"][s]["p50"] or 0 for s in stages]
        lat_series["baseline p95"] = [baseline["latency_ms"][s]["p95"] or 0 for s in stages]
    latency = _bar_chart(stages, lat_series, "Latency per stage, warm (lower is better)", "ms")

    rows = metric_rows(metrics, baseline)
    table, self_judged = ("".join(f"<tr><td>{html.escape(label(n))}</td><td>{_fmt(v)}</td><td>{_fmt(b)}</td>"
                                  f"<td>{r}</td></tr>" for n, v, b, r in rows if is_self_judged(n) == judged)
                          for judged in (False, True))
    decisions = _decisions_html(result)
    calibration = _calibration_html(result)
    failures = [item for item in result["items"] if item["failed"]]
    failing = "".join(_failure_html(item) for item in failures) or "<p>No failing questions.</p>"
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in result.get("gold_problems", []))
    system = html.escape(", ".join(f"{k}={v}" for k, v in result["system"].items()))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>rag-cited evaluation</title><meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:3px 10px;text-align:left}}
td:nth-child(n+2){{text-align:right;font-variant-numeric:tabular-nums}}.fail{{border-left:4px solid #c33;
padding:.4em .8em;margin:1em 0;background:#fff6f6}}blockquote{{margin:.3em 0 .3em 1em;color:#444}}
img{{max-width:100%}}code{{font-size:12px}}</style></head><body>
<h1>Evaluation: {html.escape(result['system']['name'])} vs {html.escape('llama-index baseline' if baseline else 'no baseline')}</h1>
<p><small>{system}</small></p>
<p>{metrics['questions']} questions from <code>{html.escape(result['gold'])}</code>;
{len(failures)} failing.</p>
<img alt="quality chart" src="data:image/png;base64,{quality}">
<img alt="latency chart" src="data:image/png;base64,{latency}">
<h2>Metrics</h2><p>Judged against the gold set, and latency.</p>
<table><tr><th>metric</th><th>this system</th><th>baseline</th><th>ratio</th></tr>{table}</table>
<h2>Self-judged metrics</h2><p>Scored by the product's own support checker (the check that decides which
citations it keeps), not against the gold set: they show the checker agrees with itself, not that it is right.</p>
<table><tr><th>metric</th><th>this system</th><th>baseline</th><th>ratio</th></tr>{self_judged}</table>
{decisions}
{calibration}
<h2>Failing questions</h2>{failing}
{"<h2>Gold-set problems</h2><ul>" + problems + "</ul>" if problems else ""}
</body></html>"""


def _decisions_html(result: dict[str, Any]) -> str:
    metrics, baseline = result["metrics"], result.get("baseline")
    if "decisions" not in metrics:
        return ""
    base_head = "<th>baseline</th>" if baseline else ""
    body = "".join(f"<tr><td>{html.escape(kind)}</td><td>{n}</td><td>{html.escape(answerable)}</td>"
                   f"<td>{_fmt(correct)}</td>" + (f"<td>{_fmt(base)}</td>" if baseline else "") + "</tr>"
                   for kind, n, answerable, correct, base in decision_table(metrics, baseline))
    mine, other = metrics["decisions"], (baseline or {}).get("decisions") or {}
    wrong = "".join(
        f"<tr><td>{text}</td><td>{_fmt(mine[key])}</td>" + (f"<td>{_fmt(other.get(key))}</td>" if baseline else "")
        + "</tr>"
        for key, text in (("confidently_wrong", f"confidently wrong: unanswerable questions answered "
                                                f"(of {mine['unanswerable_n']})"),
                          ("wrong_among_answered", "wrong among answered: an unanswerable question answered, "
                                                   "or an answer missing every must_include group")))
    return f"""<h2>Answer or refuse, per gold type</h2>
<p>Share of right decisions: answering an answerable question, refusing an unanswerable one (for an
unanswerable type this is its refusal rate; for an answerable one, 1 − its false-refusal rate).</p>
<table id="decisions"><tr><th>gold type</th><th>n</th><th>answerable</th><th>this system</th>{base_head}</tr>
{body}</table>
<table id="confidently-wrong"><tr><th>wrong answers</th><th>this system</th>{base_head}</tr>{wrong}</table>"""


def _calibration_html(result: dict[str, Any]) -> str:
    metrics, baseline = result["metrics"], result.get("baseline")
    if "calibration" not in metrics:
        return ""
    blocks = {name: block for name, block in ((result["system"]["name"], metrics["calibration"]),
                                              ("baseline", (baseline or {}).get("calibration")))
              if block and block["n"]}
    head = """<h2>Calibration</h2><p>Each answer's confidence (the probability that the sources answer the
question) against whether the question was answerable and answered with every must_include group covered;
refusals and answers that miss count as 0. Ten equal-width bins; ECE is the count-weighted mean gap between a
bin's mean confidence and its observed share.</p>"""
    if not blocks:
        return head + "<p>No item carries a confidence: no calibration plot.</p>"
    figures = "".join(f"<li>{html.escape(name)}: ECE {_fmt(b['ece'])}, Brier {_fmt(b['brier'])}, "
                      f"{b['n']} with a confidence, {b['left_out']} without</li>" for name, b in blocks.items())
    return (head + f'<ul>{figures}</ul><img alt="calibration plot" '
            f'src="data:image/png;base64,{_calibration_plot(blocks)}">')


def _failure_html(item: dict) -> str:
    cites = "".join(f"<blockquote>[{c['n']}] <code>{html.escape(c['doc_id'])}</code> {c['start']}–{c['end']}: "
                    f"“{html.escape(c['quote'])}”</blockquote>" for c in item["citations"])
    return (f"<div class='fail'><b>{html.escape(item['id'])}</b> ({html.escape(item['type'])}): "
            f"{html.escape(item['question'])}<br><i>{html.escape(item['why'])}</i>"
            f"<p>{html.escape(item['answer'])}</p>{cites}</div>")
