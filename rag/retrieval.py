"""Hybrid retrieval: dense (Chroma) and keyword (BM25) rankings fused by RRF,
then decisive keyword matches first (``RetrieveSettings.decisive_ratio``).

The retriever depends on three small protocols rather than on the stores, so
the core does not import ``index/``; ``index.service`` wires the real ones in.
Only chunks the docstore knows are returned (see ``index.ingest``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol

from llama_index.core.embeddings import BaseEmbedding

from rag.fusion import promote_decisive, reciprocal_rank_fusion
from rag.settings import RetrieveSettings
from rag.types import Hit, Passage


class DenseIndex(Protocol):
    def query(self, embedding: list[float], k: int) -> list[tuple[str, float]]: ...


class Retriever(Protocol):
    """What the ask pipeline needs of retrieval (the hybrid retriever, or the evaluation's baseline)."""

    def retrieve(self, question: str, top_k: int | None = None) -> Retrieval: ...


class KeywordIndex(Protocol):
    def keyword_search(self, query: str, limit: int) -> list[tuple[str, float]]: ...

    def get_chunks(self, chunk_ids: Iterable[str]) -> Mapping[str, Passage]: ...


_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dense-retrieval")


@dataclass
class Retrieval:
    hits: list[Hit]
    query_embedding: list[float]


class HybridRetriever:
    def __init__(self, dense: DenseIndex, keyword: KeywordIndex, embedder: BaseEmbedding,
                 settings: RetrieveSettings) -> None:
        self.dense = dense
        self.keyword = keyword
        self.embedder = embedder
        self.settings = settings

    def _dense(self, question: str) -> tuple[list[float], list[str]]:
        query_embedding = self.embedder.get_query_embedding(question)
        if not self.settings.dense_weight:
            return query_embedding, []
        return query_embedding, [cid for cid, _ in self.dense.query(query_embedding, self.settings.candidates)]

    def retrieve(self, question: str, top_k: int | None = None) -> Retrieval:
        s = self.settings
        top_k = top_k or s.top_k
        # The dense side (embed, then Chroma) and the keyword side (SQLite) both release the GIL:
        # run them at the same time and wait for the slower one.
        dense_side = _POOL.submit(self._dense, question)
        keyword_scored = self.keyword.keyword_search(question, s.candidates) if s.keyword_weight else []
        keyword = [cid for cid, _ in keyword_scored]
        query_embedding, dense = dense_side.result()
        fused = reciprocal_rank_fusion([dense, keyword], [s.dense_weight, s.keyword_weight], s.rrf_k)
        # Ranks hide how far BM25's best outscores the rest: an exact match on a rare term goes first.
        fused = promote_decisive(fused, keyword_scored, s.decisive_ratio)
        # Look up a few spare candidates: dense ids may be stale orphans.
        wanted = [cid for cid, _ in fused[: top_k * 2 + 10]]
        records = self.keyword.get_chunks(wanted)
        best_possible = (s.dense_weight + s.keyword_weight) / (s.rrf_k + 1)
        dense_rank = {cid: i for i, cid in enumerate(dense, 1)}
        keyword_rank = {cid: i for i, cid in enumerate(keyword, 1)}
        hits: list[Hit] = []
        for cid, score in fused:
            record = records.get(cid)
            if record is None:
                continue
            hits.append(record.as_hit(round(score / best_possible, 4), dense_rank.get(cid), keyword_rank.get(cid)))
            if len(hits) == top_k:
                break
        return Retrieval(hits=hits, query_embedding=query_embedding)
