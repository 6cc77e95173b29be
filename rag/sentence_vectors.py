"""Embeddings of short texts (sentences), cached: warm questions re-embed nothing."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
from llama_index.core.embeddings import BaseEmbedding


class SentenceVectors:
    def __init__(self, embedder: BaseEmbedding, max_items: int = 50_000) -> None:
        self.embedder = embedder
        self.max_items = max_items
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts`` (one row each)."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = np.asarray(self.embedder.get_text_embedding_batch(missing), dtype=np.float32)
            with self._lock:
                for text, vec in zip(missing, vectors):
                    self._cache[text] = vec
                while len(self._cache) > self.max_items:
                    self._cache.popitem(last=False)
        with self._lock:
            rows = []
            for t in texts:
                vec = self._cache.get(t)
                if vec is None:  # evicted meanwhile by another thread
                    vec = np.asarray(self.embedder.get_text_embedding(t), dtype=np.float32)
                else:
                    self._cache.move_to_end(t)
                rows.append(vec)
        return np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
