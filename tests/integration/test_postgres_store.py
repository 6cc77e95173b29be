"""The PostgreSQL docstore against a real server (slow): migrations, two writers of one document, a server
that goes away and comes back, the service end to end on it, and keyword ranking as good as FTS5's."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from index.chunking import chunk_text, text_hash
from index.pg_docstore import PostgresDocStore, migrations, redact
from rag.errors import StoreUnavailableError

pytestmark = pytest.mark.slow

MODEL = "hash:256"


def write(store: PostgresDocStore, doc_id: str, text: str, size: int = 40, date: str | None = None) -> list[str]:
    chunks = chunk_text(doc_id, text, size, 0)
    store.replace_document(doc_id=doc_id, source_root="r", title=doc_id, date=date, url=None,
                           content_hash=text_hash(text), text=text, chunks=chunks)
    return [c.chunk_id for c in chunks]


def test_migrations_run_once_and_are_recorded(database_url):
    first = PostgresDocStore(database_url, MODEL)
    latest = max(v for v, _, _ in migrations())
    assert first.schema_version() == latest
    assert first.migrate() == []  # nothing left to apply
    with psycopg.connect(database_url) as con:
        rows = con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [v for v, _ in rows] == [v for v, _, _ in migrations()]
    first.close()
    # replicas starting together: the advisory lock lets one migrate, the others find it done
    opened: list[PostgresDocStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(PostgresDocStore(database_url, MODEL))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 4
    for s in opened:
        s.close()


def test_two_writers_of_one_document_leave_one_version(database_url):
    a, b = PostgresDocStore(database_url, MODEL), PostgresDocStore(database_url, MODEL)
    versions = [f"Version {v}. The harbour reopened after the storm, said officer number {v}.\n" * 30
                for v in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(store: PostgresDocStore, text: str) -> None:
        barrier.wait()
        try:
            for _ in range(5):
                write(store, "harbour.txt", text)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s, t)) for s, t in zip((a, b), versions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []  # each write waited for the other's transaction (the per-document advisory lock)
    final = a.document("harbour.txt").text
    assert final in versions
    expected = [c.chunk_id for c in chunk_text("harbour.txt", final, 40, 0)]
    assert a.chunk_ids("harbour.txt") == expected == b.chunk_ids("harbour.txt")  # no duplicates, no mix
    assert a.chunk_count() == len(expected) and a.approximate_chunk_count() == len(expected)
    assert all(c.text == final[c.start:c.end] for c in a.chunks_of("harbour.txt"))
    write(a, "dated.txt", "The port reopened after the storm.", date="2023-05-30")
    assert {c.date for c in a.get_chunks(a.chunk_ids("dated.txt")).values()} == {"2023-05-30"}
    a.close()
    b.close()


def test_keyword_search_scores_a_bounded_number_of_rows_rarest_terms_first(database_url, monkeypatch):
    import index.pg_docstore as pg

    store = PostgresDocStore(database_url, MODEL)
    for i in range(40):
        extra = " The walrus envoy arrived." if i == 17 else ""
        defense = " defense" if i % 3 == 0 else ""  # in 14 of the 40
        write(store, f"d{i}.txt", f"China discussed{defense} matters in meeting number {i}.{extra}\n", size=120)
    monkeypatch.setattr(pg, "KEYWORD_ROW_BUDGET", 10)
    assert store.keyword_search("China defense walrus", 5)[0][0].startswith("d17.txt")
    assert [c for c, _ in store.keyword_search("China defense walrus", 50)] == [
        c for c, _ in store.keyword_search("walrus", 50)]  # the common terms left out: over the row budget
    # only terms over the budget: nothing (FTS5 would still score the rarest; here the dense side answers)
    assert store.keyword_search("China defense", 50) == []
    monkeypatch.setattr(pg, "KEYWORD_ROW_BUDGET", 20)
    assert len(store.keyword_search("China defense", 50)) == 14  # "defense" (14 chunks) fits, "China" (40) not
    monkeypatch.setattr(pg, "KEYWORD_ROW_BUDGET", 1000)
    assert len(store.keyword_search("China defense", 50)) == 40  # a small index: every term scored, as in FTS5
    assert store.term_document_counts(["walrus", "China", "zebra"]) == {"walrus": 1, "China": 40, "zebra": 0}
    assert store.term_document_counts(["China"], cap=5) == {"China": 5}
    store.close()


def test_a_server_that_goes_away_is_store_unavailable_and_is_used_again_when_back(postgres_server, database_url):
    store = PostgresDocStore(database_url, MODEL)
    write(store, "harbour.txt", "The harbour reopened after the storm damaged two piers.\n")
    postgres_server.stop(mode="immediate")
    try:
        with pytest.raises(StoreUnavailableError) as info:
            store.document_count()
        assert "unavailable" in info.value.message and "postgres@127.0.0.1" in info.value.message
    finally:
        postgres_server.resume()
    deadline = time.monotonic() + 20
    while True:  # the pool replaces its broken connections by itself
        try:
            assert store.document_count() == 1
            break
        except StoreUnavailableError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert store.keyword_search("piers", 5)
    store.close()


def test_no_server_at_all_is_a_clear_error():
    from kit import free_port

    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/rag"
    with pytest.raises(StoreUnavailableError) as info:
        PostgresDocStore(url, MODEL, timeout_s=1)
    assert "cannot reach the database" in info.value.message
    assert "secret" not in info.value.message and redact(url) in info.value.message
