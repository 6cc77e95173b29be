"""`python -m bench.fusion_study [--docs N] [--work DIR] [--json-out F]`

Retrieval only (no answering): how rank fusion variants order the same dense
and BM25 candidates on three sets, with the real embedding model (default
settings):

- news: the development gold set over the bundled corpus;
- squad: the SQuAD gold set (answerable items) over its eight articles;
- synthetic: ``bench.synthetic``'s corpus, every document with one unique fact
  ("Who filed report 00042?"); the question's fact chunk should come first.

For each question the candidates are fetched once (query embedding, Chroma
top ``candidates`` with cosine similarity, BM25 top ``candidates`` with
scores), then every variant re-orders that same pool, so the variants differ
only in fusion. Gold sets: MRR and recall@5 over the top 10 chunks
(``eval.metrics.retrieval_scores``), mean over answerable items with located
sources, plus wins/losses in reciprocal rank against current RRF. Synthetic:
share of questions whose top 1 / top 5 chunks hold the fact sentence.

A last row per set runs the production ``HybridRetriever`` with default
settings (``RAG_RETRIEVE_*`` from the environment apply), to check that the
shipped rule is the one measured: with defaults it must equal the "(shipped)"
row.

Stores live under ``--work`` (default /tmp/fusion) and are re-used: a second
run only hashes the files. The first run embeds ~``5 × docs`` synthetic chunks
(about 20 chunks/s on two cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Callable

from eval.gold import load_gold, locate_sources
from eval.metrics import retrieval_scores
from index.ingest import Ingestor
from index.service import open_stores
from rag.embeddings import build_embedder
from rag.fusion import reciprocal_rank_fusion
from rag.retrieval import HybridRetriever
from rag.settings import BUNDLED_CORPUS, REPO_ROOT, RetrieveSettings, Settings

SHARED = REPO_ROOT.parent / "shared" / "eval"
TOP = 10

Scored = list[tuple[str, float]]  # (chunk id, score) best first


@dataclass
class Pool:
    """One question's candidates, fetched once."""

    dense: Scored  # cosine similarity
    keyword: Scored  # BM25 (higher is better)


# ---- fusion variants (all re-order the same pool) ---------------------------

def rrf(pool: Pool, s: RetrieveSettings) -> list[str]:
    return [cid for cid, _ in reciprocal_rank_fusion([[c for c, _ in pool.dense], [c for c, _ in pool.keyword]],
                                                     [s.dense_weight, s.keyword_weight], s.rrf_k)]


def _promote(order: list[str], cid: str) -> list[str]:
    return [cid] + [c for c in order if c != cid]


def promote_vs_rank(rank: int, ratio: float) -> Callable[[Pool, RetrieveSettings], list[str]]:
    """RRF, then the top BM25 hit goes first when its score ≥ ratio × the score at ``rank`` (or the last)."""

    def variant(pool: Pool, s: RetrieveSettings) -> list[str]:
        order = rrf(pool, s)
        kw = pool.keyword
        if len(kw) >= 2:
            ref = kw[min(rank, len(kw)) - 1][1]
            if ref > 0 and kw[0][1] >= ratio * ref:
                return _promote(order, kw[0][0])
        return order

    return variant


def promote_head(ratio: float, fused_order: bool) -> Callable[[Pool, RetrieveSettings], list[str]]:
    """RRF, then every BM25 hit scoring ≥ ratio × the 5th BM25 score (or the last) goes first: in BM25
    order, or in their fused order (so the dense side breaks ties among several decisive matches)."""

    def variant(pool: Pool, s: RetrieveSettings) -> list[str]:
        order = rrf(pool, s)
        kw = pool.keyword
        if len(kw) < 2:
            return order
        ref = kw[min(5, len(kw)) - 1][1]
        head = [c for c, v in kw if ref > 0 and v >= ratio * ref]
        if not head:
            return order
        if fused_order:
            chosen = set(head)
            head = [c for c in order if c in chosen]
        return head + [c for c in order if c not in set(head)]

    return variant


def rrf_score_scaled(gamma: float) -> Callable[[Pool, RetrieveSettings], list[str]]:
    """RRF where each BM25 hit's contribution is scaled by (score / top score)^gamma:
    equal to RRF when BM25 is flat, close to 'the top hit only' when it is decisive."""

    def variant(pool: Pool, s: RetrieveSettings) -> list[str]:
        scores: dict[str, float] = {}
        for rank, (cid, _) in enumerate(pool.dense, 1):
            scores[cid] = scores.get(cid, 0.0) + s.dense_weight / (s.rrf_k + rank)
        top = pool.keyword[0][1] if pool.keyword else 0.0
        for rank, (cid, score) in enumerate(pool.keyword, 1):
            share = (score / top) ** gamma if top > 0 else 1.0
            scores[cid] = scores.get(cid, 0.0) + s.keyword_weight * share / (s.rrf_k + rank)
        return [cid for cid, _ in sorted(scores.items(), key=lambda kv: -kv[1])]

    return variant


def _normalised(scored: Scored, how: str) -> dict[str, float]:
    if not scored:
        return {}
    values = [v for _, v in scored]
    hi, lo = max(values), min(values)
    if how == "minmax":
        span = hi - lo
        return {cid: (v - lo) / span if span > 0 else 1.0 for cid, v in scored}
    return {cid: v / hi if hi > 0 else 0.0 for cid, v in scored}  # relative to the top


def score_fusion(how: str, dense_weight: float | None = None,
                 keyword_weight: float | None = None) -> Callable[[Pool, RetrieveSettings], list[str]]:
    """Weighted sum of normalised scores (a candidate missing from one list gets 0 there)."""

    def variant(pool: Pool, s: RetrieveSettings) -> list[str]:
        wd = s.dense_weight if dense_weight is None else dense_weight
        wk = s.keyword_weight if keyword_weight is None else keyword_weight
        d, k = _normalised(pool.dense, how), _normalised(pool.keyword, how)
        first = list(dict.fromkeys([c for c, _ in pool.dense] + [c for c, _ in pool.keyword]))
        return sorted(first, key=lambda c: -(wd * d.get(c, 0.0) + wk * k.get(c, 0.0)))

    return variant


VARIANTS: dict[str, Callable[[Pool, RetrieveSettings], list[str]]] = {
    "rrf (current)": rrf,
    **{f"promote top ≥ {r:g}× 5th": promote_vs_rank(5, r) for r in (2, 3, 4, 5, 8)},
    **{f"promote all ≥ {r:g}× 5th, bm25 order": promote_head(r, False) for r in (2, 3, 4)},
    **{f"promote all ≥ {r:g}× 5th, fused order{' (shipped)' if r == 3 else ''}": promote_head(r, True)
       for r in (2, 3, 4)},
    **{f"promote top ≥ {r:g}× 2nd": promote_vs_rank(2, r) for r in (1.5, 2, 3, 5)},
    **{f"rrf, bm25 share^{g:g}": rrf_score_scaled(g) for g in (1, 2, 4)},
    "minmax 0.5/1.0": score_fusion("minmax"),
    "minmax 0.3/1.0": score_fusion("minmax", 0.3, 1.0),
    "minmax 0.75/1.0": score_fusion("minmax", 0.75, 1.0),
    "minmax 1/1": score_fusion("minmax", 1.0, 1.0),
    "rel-to-top 0.5/1.0": score_fusion("top"),
    "rel-to-top 1/1": score_fusion("top", 1.0, 1.0),
}


# ---- sets ------------------------------------------------------------------

class Store:
    def __init__(self, data_dir: Path, embedder, settings: Settings) -> None:
        self.settings = settings.model_copy(update={"data_dir": data_dir})
        self.embedder = embedder
        self.vectors, self.docstore = open_stores(self.settings, embedder.model_id)

    def ingest(self, corpus: Path) -> None:
        started = time.perf_counter()
        report = Ingestor(self.docstore, self.vectors, self.embedder, self.settings.chunk,
                          batch_size=self.settings.embed.batch_size).ingest_path(corpus, prune=True)
        print(f"  ingest {corpus}: {len(report.added)} added, {len(report.unchanged)} unchanged, "
              f"{report.chunks_embedded} chunks embedded ({time.perf_counter() - started:.0f} s)", file=sys.stderr)

    def pool(self, question: str) -> Pool:
        n = self.settings.retrieve.candidates
        embedding = self.embedder.get_query_embedding(question)
        return Pool(self.vectors.query(embedding, n), self.docstore.keyword_search(question, n))

    def top_spans(self, order: list[str]) -> list[tuple[str, int, int]]:
        """The first ``TOP`` ids the docstore knows, as spans (what the retriever would return)."""
        records = self.docstore.get_chunks(order[: TOP * 2 + 10])
        return [(r.doc_id, r.start, r.end) for r in (records.get(c) for c in order) if r is not None][:TOP]

    def production(self) -> HybridRetriever:
        return HybridRetriever(self.vectors, self.docstore, self.embedder, self.settings.retrieve)


def gold_set(store: Store, gold: Path) -> list[tuple[str, list[tuple[str, int, int]]]]:
    items = [i for i in load_gold(gold) if i.answerable and i.sources]
    problems = locate_sources(items, store.docstore.text_of)
    if problems:
        print(f"  {len(problems)} gold-source problem(s), e.g. {problems[0]}", file=sys.stderr)
    return [(i.question, i.spans) for i in items if i.spans]


def evaluate_gold(store: Store, questions, settings: RetrieveSettings) -> dict:
    pools = [store.pool(q) for q, _ in questions]
    out: dict[str, dict] = {}
    base_rr = None
    for name, variant in VARIANTS.items():
        scores = [retrieval_scores(store.top_spans(variant(p, settings)), gold) for p, (_, gold) in
                  zip(pools, questions)]
        rr = [x["mrr"] for x in scores]
        base_rr = base_rr or rr
        out[name] = {"mrr": mean(rr), "recall@5": mean(x["recall@5"] for x in scores),
                     "better": sum(a > b + 1e-9 for a, b in zip(rr, base_rr)),
                     "worse": sum(a < b - 1e-9 for a, b in zip(rr, base_rr))}
    retriever = store.production()
    scores = [retrieval_scores([(h.doc_id, h.start, h.end) for h in retriever.retrieve(q, TOP).hits], gold)
              for q, gold in questions]
    rr = [x["mrr"] for x in scores]
    out["production retriever"] = {"mrr": mean(rr), "recall@5": mean(x["recall@5"] for x in scores),
                                   "better": sum(a > b + 1e-9 for a, b in zip(rr, base_rr)),
                                   "worse": sum(a < b - 1e-9 for a, b in zip(rr, base_rr))}
    return {"items": len(questions), "variants": out}


def evaluate_synthetic(store: Store, documents: int, settings: RetrieveSettings) -> dict:
    from bench.synthetic import unique_fact

    questions, fact_chunks = [], []
    for i in range(documents):
        sentence, question, _ = unique_fact(i)
        chunks = {c.chunk_id for c in store.docstore.chunks_of(f"synthetic_{i:05d}.txt") if sentence in c.text}
        questions.append(question)
        fact_chunks.append(chunks)
    pools = [store.pool(q) for q in questions]
    out: dict[str, dict] = {}

    def known(order: list[str]) -> list[str]:
        records = store.docstore.get_chunks(order[:20])
        return [c for c in order[:20] if c in records]

    for name, variant in VARIANTS.items():
        orders = [known(variant(p, settings)) for p in pools]
        out[name] = {"top1": mean(float(bool(set(o[:1]) & f)) for o, f in zip(orders, fact_chunks)),
                     "top5": mean(float(bool(set(o[:5]) & f)) for o, f in zip(orders, fact_chunks))}
    retriever = store.production()
    orders = [[h.chunk_id for h in retriever.retrieve(q, 5).hits] for q in questions]
    out["production retriever"] = {"top1": mean(float(bool(set(o[:1]) & f)) for o, f in zip(orders, fact_chunks)),
                                   "top5": mean(float(bool(set(o[:5]) & f)) for o, f in zip(orders, fact_chunks))}
    return {"items": len(questions), "chunks": store.docstore.chunk_count(), "variants": out}


def render(result: dict) -> str:
    news, squad, syn = (result["sets"][k]["variants"] for k in ("news", "squad", "synthetic"))
    n, q, s = (result["sets"][k]["items"] for k in ("news", "squad", "synthetic"))
    lines = ["| variant | news MRR | news R@5 | news +/− | squad MRR | squad R@5 | squad +/− | "
             "synthetic top-1 | synthetic top-5 |",
             "|---|---|---|---|---|---|---|---|---|",
             f"| (items) | {n} | | | {q} | | | {s} ({result['sets']['synthetic']['chunks']} chunks) | |"]
    for name in news:
        a, b, c = news[name], squad[name], syn[name]
        lines.append(f"| {name} | {a['mrr']:.3f} | {a['recall@5']:.3f} | +{a['better']}/−{a['worse']} | "
                     f"{b['mrr']:.3f} | {b['recall@5']:.3f} | +{b['better']}/−{b['worse']} | "
                     f"{c['top1']:.3f} | {c['top5']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fusion_study", description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="synthetic documents (default 2000 as in `python -m bench`, ≈5 chunks each)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fusion"), help="where the three stores live")
    parser.add_argument("--news-gold", type=Path, default=SHARED / "gold_dev.jsonl")
    parser.add_argument("--squad-dir", type=Path, default=SHARED / "squad")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    settings = Settings()
    retrieve = settings.retrieve
    embedder = build_embedder(settings.embed)
    result: dict = {"settings": retrieve.model_dump(), "sets": {}}

    print("news …", file=sys.stderr)
    store = Store(args.work / "news", embedder, settings)
    store.ingest(BUNDLED_CORPUS)
    result["sets"]["news"] = evaluate_gold(store, gold_set(store, args.news_gold), retrieve)

    print("squad …", file=sys.stderr)
    store = Store(args.work / "squad", embedder, settings)
    store.ingest(args.squad_dir / "corpus")
    result["sets"]["squad"] = evaluate_gold(store, gold_set(store, args.squad_dir / "gold.jsonl"), retrieve)

    print(f"synthetic, {args.docs} documents …", file=sys.stderr)
    from bench.synthetic import write_corpus

    corpus = args.work / f"synthetic-{args.docs}-corpus"
    if not corpus.is_dir() or len(list(corpus.glob("*.txt"))) != args.docs:
        write_corpus(corpus, args.docs)
    store = Store(args.work / f"synthetic-{args.docs}", embedder, settings)
    store.ingest(corpus)
    result["sets"]["synthetic"] = evaluate_synthetic(store, args.docs, retrieve)

    result["seconds"] = round(time.perf_counter() - started, 1)
    print(render(result))
    print(f"\n{result['seconds']:.0f} s")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
