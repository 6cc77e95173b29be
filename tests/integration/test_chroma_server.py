"""Server mode: a real ``chroma run`` process on 127.0.0.1 holds the vectors
(``settings.chroma.host``); the docstore stays in ``tmp_path``."""

from __future__ import annotations

import time

import pytest

from kit import ChromaServer, free_port
from rag.embeddings import HashEmbedding
from rag.errors import StoreUnavailableError

QUESTION = "Who proposed a phone call with the Chinese defense minister?"


@pytest.fixture
def chroma_server(tmp_path, request):
    server = ChromaServer(tmp_path / "chroma-server", tmp_path / "chroma.log")
    request.addfinalizer(server.stop)
    return server.start()


@pytest.fixture
def server_settings(make_settings, chroma_server):
    def make():
        settings = make_settings()
        settings.chroma.host = "127.0.0.1"
        settings.chroma.port = chroma_server.port
        settings.chroma.collection = "it_chunks"
        return settings

    return make


def server_collection_count(port: int, name: str) -> int:
    import chromadb
    from chromadb.config import Settings as ChromaClientSettings

    client = chromadb.HttpClient(host="127.0.0.1", port=port,
                                 settings=ChromaClientSettings(anonymized_telemetry=False))
    return client.get_collection(name).count()


def assert_exact_citations(service, answer) -> None:
    assert answer.answerable and answer.citations
    for citation in answer.citations:
        text = service.docstore.document(citation.doc_id).text
        assert citation.quote == text[citation.start:citation.end]


@pytest.mark.slow
def test_ingest_ask_and_restart_on_chroma_server(chroma_server, server_settings, make_service, corpus_dir, tmp_path):
    settings = server_settings()
    service = make_service(settings, embedder=HashEmbedding())
    assert service.vectors.where == f"http://127.0.0.1:{chroma_server.port}"
    assert not (tmp_path / "data" / "chroma").exists()  # no embedded store in server mode
    assert service.vectors.collection.configuration["hnsw"]["ef_search"] == settings.chroma.search_ef

    report = service.ingest(corpus_dir)
    assert len(report.added) == 5
    chunks = service.docstore.chunk_count()
    assert chunks == report.chunks_written > 5
    assert service.vectors.count() == chunks
    assert server_collection_count(chroma_server.port, "it_chunks") == chunks

    answer = service.ask(QUESTION)
    assert_exact_citations(service, answer)
    assert "Austin" in answer.answer
    hits = service.pipeline.retriever.retrieve(QUESTION).hits
    assert any(h.dense_rank is not None for h in hits)  # the server answered the dense query
    service.close()

    chroma_server.stop()
    chroma_server.start()  # same path, same port

    assert server_collection_count(chroma_server.port, "it_chunks") == chunks
    reopened = make_service(server_settings(), embedder=HashEmbedding())
    assert reopened.vectors.count() == chunks
    assert reopened.vectors.collection.configuration["hnsw"]["ef_search"] == settings.chroma.search_ef
    assert sorted(reopened.vectors.all_ids()) == sorted(reopened.docstore.chunk_ids())
    again = reopened.ingest(corpus_dir)
    assert len(again.unchanged) == 5 and again.chunks_embedded == 0
    answer2 = reopened.ask(QUESTION)
    assert_exact_citations(reopened, answer2)
    assert [c.chunk_id for c in answer2.citations] == [c.chunk_id for c in answer.citations]
    dense = reopened.vectors.query(reopened.embedder.get_query_embedding(QUESTION), 5)
    assert len(dense) == 5 and all(cid in set(reopened.docstore.chunk_ids()) for cid, _ in dense)


@pytest.mark.slow
def test_incremental_update_and_removal_on_server(chroma_server, server_settings, make_service, corpus_dir):
    service = make_service(server_settings(), embedder=HashEmbedding())
    service.ingest(corpus_dir)
    changed, deleted = "001_c2d313378d47ce4e.txt", "003_fa1d9f4716c12055.txt"
    gone = service.docstore.chunk_ids(deleted)
    path = corpus_dir / changed
    path.write_text(path.read_text(encoding="utf-8") + "\nThe zebra quartet rehearsed in Reykjavik.\n",
                    encoding="utf-8")
    (corpus_dir / deleted).unlink()

    report = service.ingest(corpus_dir)

    assert report.updated == [changed] and report.removed == [deleted]
    assert report.chunks_reused > 0 and report.chunks_embedded <= 2
    assert service.vectors.embeddings(gone) == {}
    assert service.vectors.count() == service.docstore.chunk_count()
    assert server_collection_count(chroma_server.port, "it_chunks") == service.docstore.chunk_count()


@pytest.mark.slow
def test_server_going_away_raises_store_unavailable(chroma_server, server_settings, make_service, corpus_dir):
    service = make_service(server_settings(), embedder=HashEmbedding())
    service.ingest(corpus_dir)
    service.vectors.heartbeat()

    chroma_server.stop()

    started = time.perf_counter()
    with pytest.raises(StoreUnavailableError):
        service.vectors.heartbeat()
    with pytest.raises(StoreUnavailableError):
        service.ask(QUESTION)
    assert time.perf_counter() - started < 30


def test_closed_port_raises_store_unavailable_quickly(make_settings):
    from index.service import RagService

    settings = make_settings()
    settings.chroma.host = "127.0.0.1"
    settings.chroma.port = free_port()  # nothing listens there

    started = time.perf_counter()
    with pytest.raises(StoreUnavailableError) as info:
        RagService(settings, embedder=HashEmbedding())
    assert time.perf_counter() - started < 10
    assert info.value.code == "store_unavailable"
    assert str(settings.chroma.port) in info.value.message
