"""The dense search is exact at the collection sizes we serve, so a question retrieves the same passages after
every restart. Real embedded Chroma in ``tmp_path``; random unit vectors, the hardest case for HNSW."""

from __future__ import annotations

import numpy as np
from llama_index.core.schema import TextNode

from index.vectors import VectorIndex
from rag.settings import ChromaSettings

N, DIM, K = 800, 384, 30


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.normal(size=(n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_the_dense_search_finds_the_exact_nearest_passages(tmp_path):
    rng = np.random.default_rng(7)
    vectors, queries = unit_rows(rng, N), unit_rows(rng, 25)
    index = VectorIndex(ChromaSettings(), tmp_path)
    index.add([TextNode(id_=f"c{i}", text=f"passage {i}", embedding=v.tolist()) for i, v in enumerate(vectors)])
    reopened = VectorIndex(ChromaSettings(), tmp_path)  # a restart: Chroma builds its graph again
    missed = 0
    for q in queries:
        exact = {f"c{i}" for i in np.argsort(-(vectors @ q))[:K]}
        for found in (index.query(q.tolist(), K), reopened.query(q.tolist(), K)):
            missed += len(exact - {cid for cid, _ in found})
    assert missed == 0  # at Chroma's default breadth (100) about one neighbour in a hundred is missed here


def test_the_search_breadth_is_set_on_new_and_existing_collections(tmp_path):
    created = VectorIndex(ChromaSettings(search_ef=120), tmp_path)
    assert created.collection.configuration["hnsw"]["ef_search"] == 120
    assert created.collection.configuration["hnsw"]["space"] == "cosine"
    reopened = VectorIndex(ChromaSettings(search_ef=640), tmp_path)
    assert reopened.collection.configuration["hnsw"]["ef_search"] == 640
    assert VectorIndex(ChromaSettings(search_ef=640), tmp_path).collection.configuration["hnsw"]["ef_search"] == 640
