"""The dense side: a Chroma collection behind llama-index's ``ChromaVectorStore``.

Embedded ``PersistentClient`` in the data directory by default, or a
``chroma run`` server when ``RAG_CHROMA_HOST`` is set. We always pass our
own embeddings; Chroma's default embedding function (which downloads a model)
is never used.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from llama_index.vector_stores.chroma import ChromaVectorStore

from rag.errors import StoreUnavailableError
from rag.settings import ChromaSettings


def _unavailable(exc: Exception, where: str) -> StoreUnavailableError:
    return StoreUnavailableError(f"Chroma store unavailable at {where}: {exc}", where=where)


#: A query is tried this often when it meets an id deleted under it (see _lost_a_race).
QUERY_ATTEMPTS = 3


def _lost_a_race(exc: StoreUnavailableError) -> bool:
    """Embedded Chroma (1.5) sometimes fails a query with "Error finding id" when a delete of some of the
    nearest vectors commits while the query runs (3 of 18,433 requests in a soak with uploads and deletes
    every second); the same query a moment later succeeds. Nothing is wrong with the store."""
    return "Error finding id" in str(exc.__cause__ or exc)


def _client(settings: ChromaSettings, data_dir: Path) -> tuple[Any, str]:
    import chromadb
    from chromadb.config import Settings as ChromaClientSettings

    client_settings = ChromaClientSettings(anonymized_telemetry=False)
    if settings.host:
        where = f"{'https' if settings.ssl else 'http'}://{settings.host}:{settings.port}"
        try:
            return chromadb.HttpClient(host=settings.host, port=settings.port, ssl=settings.ssl,
                                       settings=client_settings), where
        except Exception as exc:  # chromadb raises several types for a missing server
            raise _unavailable(exc, where) from exc
    path = Path(data_dir) / "chroma"
    try:
        return chromadb.PersistentClient(path=str(path), settings=client_settings), str(path)
    except Exception as exc:
        raise _unavailable(exc, str(path)) from exc


class VectorIndex:
    """Chunk vectors keyed by chunk id; cosine similarity."""

    def __init__(self, settings: ChromaSettings, data_dir: Path) -> None:
        self._client, self.where = _client(settings, data_dir)
        try:
            self.collection = self._client.get_or_create_collection(
                settings.collection, metadata={"hnsw:space": "cosine"}, embedding_function=None)
            if self._search_breadth() != settings.search_ef:
                self.collection.modify(configuration={"hnsw": {"ef_search": settings.search_ef}})
                # fetched again: the modified handle reports a legacy embedding-function entry (and warns)
                self.collection = self._client.get_collection(settings.collection, embedding_function=None)
        except Exception as exc:
            raise _unavailable(exc, self.where) from exc
        self.store = ChromaVectorStore(chroma_collection=self.collection)

    def _search_breadth(self) -> int | None:
        """The collection's ef_search. ``RAG_CHROMA_SEARCH_EF`` sets it on new and existing collections alike:
        Chroma rebuilds a small collection's HNSW graph, at random, each time it loads it, and at its default
        of 100 the search then misses a few near neighbours, not the same ones each time, so the same
        question could retrieve other passages after a restart."""
        hnsw = (self.collection.configuration or {}).get("hnsw") or {}
        return hnsw.get("ef_search")

    @staticmethod
    def drop(settings: ChromaSettings, data_dir: Path) -> None:
        """Delete the collection if it exists."""
        client, where = _client(settings, data_dir)
        try:
            if settings.collection in [getattr(c, "name", c) for c in client.list_collections()]:
                client.delete_collection(settings.collection)
        except Exception as exc:
            raise _unavailable(exc, where) from exc

    def _guard(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, KeyError, TypeError):
            raise
        except Exception as exc:
            raise _unavailable(exc, self.where) from exc

    def add(self, nodes: list[TextNode]) -> None:
        """Upsert in batches the server accepts (Chroma refuses more than its max batch size in one call)."""
        step = self._guard(self._client.get_max_batch_size) if nodes else 0
        for i in range(0, len(nodes), step or 1):
            self._guard(self.store.add, nodes[i:i + step])

    def delete(self, chunk_ids: list[str]) -> None:
        for i in range(0, len(chunk_ids), 1000):
            self._guard(self.collection.delete, ids=chunk_ids[i:i + 1000])

    def embeddings(self, chunk_ids: list[str]) -> dict[str, list[float]]:
        if not chunk_ids:
            return {}
        found: dict[str, list[float]] = {}
        for i in range(0, len(chunk_ids), 1000):
            got = self._guard(self.collection.get, ids=chunk_ids[i:i + 1000], include=["embeddings"])
            found.update((cid, list(vec)) for cid, vec in zip(got["ids"], got["embeddings"]))
        return found

    def query(self, embedding: list[float], k: int) -> list[tuple[str, float]]:
        """``(chunk_id, cosine similarity)`` best first."""
        request = VectorStoreQuery(query_embedding=embedding, similarity_top_k=k)
        for attempt in range(QUERY_ATTEMPTS):
            try:
                result = self._guard(self.store.query, request)
                break
            except StoreUnavailableError as exc:
                if attempt + 1 == QUERY_ATTEMPTS or not _lost_a_race(exc):
                    raise
        # ChromaVectorStore reports exp(-distance); cosine distance is 1 - cos.
        return [(cid, 1.0 + math.log(max(sim, 1e-12))) for cid, sim in zip(result.ids or [], result.similarities or [])]

    def all_ids(self) -> list[str]:
        ids: list[str] = []
        offset, page = 0, 5000
        while True:
            got = self._guard(self.collection.get, include=[], limit=page, offset=offset)
            ids.extend(got["ids"])
            if len(got["ids"]) < page:
                return ids
            offset += page

    def count(self) -> int:
        return self._guard(self.collection.count)

    def heartbeat(self) -> None:
        self._guard(self._client.heartbeat)
