"""Embeddings of short texts (sentences), cached: warm questions re-embed nothing.

The cache is bounded but fills over a long run, so its entries are kept small: a 16-byte digest of the text
as the key and the vector in half precision (cosines move by less than 0.001), about 0.9 KB an entry instead
of 2 KB (50,000 entries: ~45 MB instead of ~100 MB).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
from llama_index.core.embeddings import BaseEmbedding


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class SentenceVectors:
    def __init__(self, embedder: BaseEmbedding, max_items: int = 50_000) -> None:
        self.embedder = embedder
        self.max_items = max_items
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts`` (one float32 row each)."""
        keys = [_key(t) for t in texts]
        with self._lock:
            missing = list({k: t for k, t in zip(keys, texts) if k not in self._cache}.items())
        if missing:
            vectors = np.asarray(self.embedder.get_text_embedding_batch([t for _, t in missing]), dtype=np.float16)
            with self._lock:
                for (key, _), vec in zip(missing, vectors):
                    self._cache[key] = vec
                while len(self._cache) > self.max_items:
                    self._cache.popitem(last=False)
        with self._lock:
            rows = []
            for key, text in zip(keys, texts):
                vec = self._cache.get(key)
                if vec is None:  # evicted meanwhile by another thread
                    vec = np.asarray(self.embedder.get_text_embedding(text), dtype=np.float16)
                else:
                    self._cache.move_to_end(key)
                rows.append(vec)
        return np.vstack(rows).astype(np.float32) if rows else np.zeros((0, 0), dtype=np.float32)
