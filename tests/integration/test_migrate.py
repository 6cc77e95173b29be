"""``rag migrate``: the embedded index moved to PostgreSQL and a ``chroma run`` server without embedding
again, answering the same before and after (slow: real servers, the real model)."""

from __future__ import annotations

import subprocess

import pytest

from index.migrate import migrate_index
from index.service import RagService
from kit import ChromaServer, clean_env, rag_command
from rag.settings import ChromaSettings, Settings

pytestmark = pytest.mark.slow

QUESTIONS = [
    "Who met Xu Qiliang in Beijing in 2018?",
    "How many times did Lloyd Austin ask to speak with General Xu Qiliang in 2021?",
    "Where and when was the 2023 Shangri-La Dialogue held?",
    "How much military aid did the United States give Taiwan in 2022?",  # a refusal
]


def answers(service: RagService) -> list[tuple]:
    out = []
    for q in QUESTIONS:
        a = service.ask(q)
        out.append((a.answer, a.answerable, a.confidence,
                     [(c.doc_id, c.chunk_id, c.start, c.end, c.quote) for c in a.citations]))
    return out


def test_migrate_round_trip_answers_the_same_without_embedding(database_url, tmp_path):
    source = Settings(data_dir=tmp_path / "embedded")
    before_service = RagService(source)
    before_service.ingest()
    chunks = before_service.chunk_count()
    before = answers(before_service)
    embedder = before_service.embedder
    before_service.close()

    chroma = ChromaServer(tmp_path / "chroma", tmp_path / "chroma.log").start()
    try:
        target_chroma = ChromaSettings(host="127.0.0.1", port=chroma.port)
        report = migrate_index(source, database_url, target_chroma)
        assert report.ok, report.summary()
        assert (report.documents, report.copied, report.unchanged) == (5, 5, 0)
        assert report.chunks == chunks and report.vectors_copied == chunks
        again = migrate_index(source, database_url, target_chroma)  # nothing left to do
        assert (again.copied, again.unchanged, again.vectors_copied, again.ok) == (0, 5, 0, True)

        served = Settings(data_dir=tmp_path / "replica", database_url=database_url, chroma=target_chroma)
        after_service = RagService(served, embedder=embedder)
        assert after_service.document_count() == 5 and after_service.chunk_count() == chunks
        after = answers(after_service)
        after_service.close()
        assert after == before
        assert not (tmp_path / "replica" / "chroma").exists()  # nothing embedded, nothing stored locally
    finally:
        chroma.stop()


def test_migrate_refuses_what_it_cannot_do(tmp_path):
    env = clean_env(RAG_DATA_DIR=str(tmp_path / "data"), RAG_EMBED_PROVIDER="hash")
    bad = subprocess.run(rag_command("migrate", "--to", "mysql://x/y"), env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "postgresql://" in bad.stderr
    empty = subprocess.run(rag_command("migrate", "--to", "postgresql://postgres@127.0.0.1:1/x"), env=env,
                           capture_output=True, text=True)
    assert empty.returncode == 2 and "no embedded index" in empty.stderr and "Traceback" not in empty.stderr
