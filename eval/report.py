"""The evaluation as a person reads it: one self-contained HTML page.

A table of every metric for this system beside the baseline (with the
ratio), bar charts of the main metrics and of latency (matplotlib, embedded
as PNG), and the failing questions with their answers and citations.
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


def _value(metrics: dict, group: str, key: str) -> float | None:
    return (metrics.get(group) or {}).get(key)


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def metric_rows(metrics: dict, baseline: dict | None) -> list[tuple[str, Any, Any, str]]:
    rows = []
    for group in ("retrieval", "answer", "refusal", "citations", "faithfulness"):
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
    names = [f"{g}.{k}" for g, k in MAIN_METRICS]
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

    table = "".join(f"<tr><td>{html.escape(n)}</td><td>{_fmt(v)}</td><td>{_fmt(b)}</td><td>{r}</td></tr>"
                    for n, v, b, r in metric_rows(metrics, baseline))
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
<h2>Metrics</h2><table><tr><th>metric</th><th>this system</th><th>baseline</th><th>ratio</th></tr>{table}</table>
<h2>Failing questions</h2>{failing}
{"<h2>Gold-set problems</h2><ul>" + problems + "</ul>" if problems else ""}
</body></html>"""


def _failure_html(item: dict) -> str:
    cites = "".join(f"<blockquote>[{c['n']}] <code>{html.escape(c['doc_id'])}</code> {c['start']}–{c['end']}: "
                    f"“{html.escape(c['quote'])}”</blockquote>" for c in item["citations"])
    return (f"<div class='fail'><b>{html.escape(item['id'])}</b> ({html.escape(item['type'])}): "
            f"{html.escape(item['question'])}<br><i>{html.escape(item['why'])}</i>"
            f"<p>{html.escape(item['answer'])}</p>{cites}</div>")
