"""Varied questions for latency runs: the dev set's questions and rephrasings of them."""

from __future__ import annotations

import json

from rag.settings import REPO_ROOT

PREFIXES = ["", "According to the articles, ", "In short: ", "Quick question. "]


def varied_questions(n: int = 100) -> list[str]:
    base = [json.loads(line)["question"] for line in
            (REPO_ROOT / "eval" / "data" / "gold_dev.jsonl").read_text().splitlines() if line.strip()]
    out = [p + (q[0].lower() + q[1:] if p else q) for p in PREFIXES for q in base]
    return out[:n]
