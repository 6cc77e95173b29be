"""The docstore: documents, chunk rows and the keyword index, on SQLite (FTS5) and, in the slow tier, on a
real PostgreSQL server (``RAG_DATABASE_URL``): the same tests for both."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from index.chunking import chunk_text, text_hash
from index.docstore import DocStore
from rag.errors import IndexMismatchError
from rag.types import Chunk

MODEL = "hash:256"

SANCTIONS = (
    "Banks Sanctioned Over Exports\n"
    "The treasury sanctioned three banks on Monday for financing weapons exports. "
    "Officials said further measures were possible.\n"
    "The banks denied wrongdoing and promised an appeal.\n"
)
HARBOUR = (
    "Harbour Reopens\n"
    "The harbour reopened after the storm damaged two piers. "
    "Fishermen returned to sea on Wednesday morning.\n"
)
UNICODE = (
    "Привет мир 🎉 Заголовок\n"
    "Министерство подтвердило соглашение 🎉 в понедельник. "
    "“Quoted” words and café prices follow here. 中国代表团抵达日内瓦。\n"
    "Emoji 🚀 rockets launched after the 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 banner.\n"
)


def integrity_errors() -> tuple[type[Exception], ...]:
    try:
        import psycopg
    except ImportError:
        return (sqlite3.IntegrityError,)
    return (sqlite3.IntegrityError, psycopg.IntegrityError)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def open_store(request, tmp_path):
    """Opens the docstore under test (again, on the same file or database, when called again)."""
    opened = []
    if request.param == "postgres":
        from index.pg_docstore import PostgresDocStore

        url = request.getfixturevalue("database_url")

        def factory(model: str = MODEL):
            opened.append(PostgresDocStore(url, model))
            return opened[-1]
    else:
        def factory(model: str = MODEL):
            opened.append(DocStore(tmp_path / "d.sqlite3", model))
            return opened[-1]
    yield factory
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store):
    return open_store()


def put(store: DocStore, doc_id: str, text: str, size: int = 12, overlap: int = 0, title: str | None = None) -> list[Chunk]:
    chunks = chunk_text(doc_id, text, size, overlap)
    store.replace_document(doc_id=doc_id, source_root="root", title=title or doc_id.title(), date="2023-05-30",
                           url=f"https://ex.com/{doc_id}", content_hash=text_hash(text), text=text, chunks=chunks)
    return chunks


def assert_keywords_match_chunks(store) -> None:
    """Keyword entries belong to live chunks only, and the corpus totals BM25 reads are right."""
    if isinstance(store, DocStore):
        con = sqlite3.connect(store.path)
        assert con.execute("SELECT count(*) FROM chunk_fts").fetchone()[0] == store.chunk_count()
        con.close()
        return
    import psycopg

    with psycopg.connect(store.url) as con:
        assert con.execute("SELECT count(*) FROM chunk_terms WHERE chunk NOT IN (SELECT id FROM chunks)").fetchone()[0] == 0
        assert con.execute("SELECT count(DISTINCT chunk) FROM chunk_terms").fetchone()[0] == store.chunk_count()
        counted = dict(con.execute("SELECT term, count(*) FROM chunk_terms GROUP BY term").fetchall())
        kept = dict(con.execute("SELECT term, df FROM term_stats WHERE df > 0").fetchall())
        assert kept == counted  # document frequencies kept in step with the rows
        totals = con.execute("SELECT chunks, tokens FROM corpus").fetchone()
        assert totals[0] == store.chunk_count() and totals[1] == con.execute(
            "SELECT coalesce(sum(length), 0) FROM chunks").fetchone()[0]


def found(store: DocStore, query: str) -> list[str]:
    return [cid for cid, _ in store.keyword_search(query, 50)]


def test_keyword_search_finds_stemmed_variant(store):
    chunks = put(store, "sanctions", SANCTIONS)
    put(store, "harbour", HARBOUR)
    with_word = {c.chunk_id for c in chunks if "sanctioned" in c.text.lower()}
    assert len(with_word) == 2  # the headline and the first sentence
    assert set(found(store, "sanctions")) == with_word
    assert set(found(store, "Who was SANCTIONING?")) == with_word
    assert all(cid.startswith("harbour:") for cid in found(store, "piers"))
    assert found(store, "piers")
    assert found(store, "zebra") == []
    assert found(store, "the of and") == []  # stopwords only: no query


def test_keyword_search_scores_best_first_and_respects_limit(store):
    put(store, "sanctions", SANCTIONS)
    put(store, "harbour", HARBOUR)
    results = store.keyword_search("banks sanctioned exports", 50)
    scores = [s for _, s in results]
    assert scores == sorted(scores, reverse=True)
    assert all(s > 0 for s in scores)
    assert len(store.keyword_search("banks harbour", 1)) == 1


def test_keyword_search_is_safe_with_fts_syntax(store):
    put(store, "sanctions", SANCTIONS)
    for query in ['"banks', "banks AND OR NOT", "banks*", "banks NEAR(x)", "col:banks", "(banks)", "don't"]:
        store.keyword_search(query, 10)  # no sqlite3.OperationalError
    assert found(store, 'banks" OR "zebra')


def test_get_chunks_text_equals_document_slice(store):
    for doc_id, text in [("sanctions", SANCTIONS), ("unicode", UNICODE)]:
        chunks = put(store, doc_id, text, size=6, overlap=1)
        got = store.get_chunks([c.chunk_id for c in chunks] + ["missing:0-1:x"])
        assert set(got) == {c.chunk_id for c in chunks}
        for c in chunks:
            row = got[c.chunk_id]
            assert row.text == text[c.start:c.end] == c.text
            assert (row.start, row.end, row.doc_id) == (c.start, c.end, doc_id)
            assert row.title == doc_id.title()
            assert row.date == "2023-05-30"  # the document's date travels with its passages (and their hits)
            assert row.as_hit().date == "2023-05-30"
            assert row.text_hash == text_hash(c.text)
    assert store.get_chunks([]) == {}


def test_keyword_search_non_ascii(store):
    chunks = put(store, "unicode", UNICODE, size=6)
    hit = found(store, "соглашение")
    assert hit and "соглашение" in store.get_chunks(hit)[hit[0]].text
    assert found(store, "café") and found(store, "café") == found(store, "cafe")  # unicode61 folds diacritics
    assert {c.chunk_id for c in chunks} >= set(found(store, "rockets"))
    assert found(store, "rockets")


def test_document_metadata_and_counts(store):
    chunks = put(store, "sanctions", SANCTIONS)
    doc = store.document("sanctions")
    assert doc.text == SANCTIONS
    assert doc.size == len(SANCTIONS)
    assert doc.chunks == len(chunks)
    assert (doc.title, doc.date, doc.url, doc.source_root) == ("Sanctions", "2023-05-30", "https://ex.com/sanctions", "root")
    assert store.content_hash("sanctions") == text_hash(SANCTIONS)
    assert store.content_hash("nope") is None and store.document("nope") is None
    assert store.document_count() == 1 and store.chunk_count() == len(chunks)
    assert store.chunk_ids("sanctions") == [c.chunk_id for c in chunks]  # in document order
    assert [c.chunk_id for c in store.chunks_of("sanctions")] == [c.chunk_id for c in chunks]


def test_replacing_document_swaps_chunks_and_keywords(store):
    old = put(store, "sanctions", SANCTIONS)
    put(store, "harbour", HARBOUR)
    assert found(store, "appeal")
    new_text = SANCTIONS.replace("The banks denied wrongdoing and promised an appeal.",
                                 "The banks accepted the penalty without objection.")
    new = put(store, "sanctions", new_text)
    old_ids = {c.chunk_id for c in old}
    new_ids = {c.chunk_id for c in new}
    assert old_ids - new_ids  # the edited chunk got a new id
    assert set(store.chunk_ids("sanctions")) == new_ids
    assert store.get_chunks(old_ids - new_ids) == {}
    assert found(store, "appeal") == []
    assert found(store, "penalty") and set(found(store, "penalty")) <= new_ids
    assert store.document("sanctions").text == new_text
    assert store.document_count() == 2
    assert store.chunk_count() == len(new) + len(store.chunk_ids("harbour"))
    assert_keywords_match_chunks(store)  # no orphans left by the swap


def test_delete_document_returns_ids_and_removes_keywords(store):
    chunks = put(store, "sanctions", SANCTIONS)
    put(store, "harbour", HARBOUR)
    assert store.delete_document("sanctions") == [c.chunk_id for c in chunks]
    assert found(store, "sanctions") == [] and found(store, "appeal") == []
    assert found(store, "piers")
    assert store.document("sanctions") is None
    assert store.get_chunks([c.chunk_id for c in chunks]) == {}
    assert store.document_count() == 1
    assert store.delete_document("sanctions") == []  # already gone
    assert_keywords_match_chunks(store)


def test_term_document_counts(store):
    put(store, "sanctions", SANCTIONS, size=12)
    put(store, "harbour", HARBOUR, size=12)
    texts = [c.text for c in store.chunks_of("sanctions") + store.chunks_of("harbour")]
    counts = store.term_document_counts(["banks", "sanctions", "harbour", "zebra", "banks"])
    assert set(counts) == {"banks", "sanctions", "harbour", "zebra"}
    assert counts["banks"] == sum("bank" in t.lower() for t in texts) >= 2
    assert counts["sanctions"] == sum("sanction" in t.lower() for t in texts) >= 1
    assert counts["harbour"] == sum("harbour" in t.lower() for t in texts) >= 1
    assert counts["zebra"] == 0
    assert store.term_document_counts(["banks"], cap=1) == {"banks": 1}


def test_reopening_with_same_model_keeps_data(open_store):
    s = open_store()
    chunks = put(s, "sanctions", SANCTIONS)
    s.close()
    again = open_store()
    assert again.chunk_ids("sanctions") == [c.chunk_id for c in chunks]
    assert found(again, "sanctions")


def test_different_model_id_raises_mismatch(open_store):
    s = open_store()
    put(s, "sanctions", SANCTIONS)
    s.close()
    with pytest.raises(IndexMismatchError) as info:
        open_store("onnx:all-MiniLM-L6-v2-int8-onnx:256")
    assert info.value.details == {"built_with": MODEL, "configured": "onnx:all-MiniLM-L6-v2-int8-onnx:256"}
    # the refusal changed nothing
    assert open_store().document_count() == 1


def test_failed_write_rolls_back_leaving_previous_version(store):
    old = put(store, "sanctions", SANCTIONS)
    before = (store.document("sanctions"), store.chunk_ids("sanctions"), found(store, "appeal"))
    new_text = SANCTIONS.replace("appeal", "lawsuit")
    chunks = chunk_text("sanctions", new_text, 12, 0)
    assert len(chunks) >= 2
    broken = chunks + [chunks[0]]  # duplicate chunk_id: UNIQUE constraint fails mid-transaction
    with pytest.raises(integrity_errors()):
        store.replace_document(doc_id="sanctions", source_root="root", title="New", date=None, url=None,
                               content_hash=text_hash(new_text), text=new_text, chunks=broken)
    assert (store.document("sanctions"), store.chunk_ids("sanctions"), found(store, "appeal")) == before
    assert found(store, "lawsuit") == []
    assert store.get_chunks([c.chunk_id for c in old])[old[-1].chunk_id].text == old[-1].text
    # the connection is usable afterwards (no transaction left open)
    put(store, "harbour", HARBOUR)
    assert found(store, "piers")


def test_chunk_id_owned_by_another_document_rolls_back(store):
    put(store, "sanctions", SANCTIONS)
    harbour_chunks = put(store, "harbour", HARBOUR)
    stolen = [Chunk(chunk_id=harbour_chunks[0].chunk_id, doc_id="sanctions", start=0, end=5, text=SANCTIONS[:5])]
    before = store.chunk_ids("sanctions")
    with pytest.raises(integrity_errors()):
        store.replace_document(doc_id="sanctions", source_root="root", title="x", date=None, url=None,
                               content_hash="h", text=SANCTIONS, chunks=stolen)
    assert store.chunk_ids("sanctions") == before
    assert store.chunk_ids("harbour") == [c.chunk_id for c in harbour_chunks]


def test_documents_listing_filters_by_source_root(store):
    put(store, "sanctions", SANCTIONS)
    store.replace_document(doc_id="other", source_root="elsewhere", title="O", date=None, url=None,
                           content_hash="h", text=HARBOUR, chunks=chunk_text("other", HARBOUR, 12, 0))
    assert [d.doc_id for d in store.documents()] == ["other", "sanctions"]
    assert [d.doc_id for d in store.documents(source_root="root")] == ["sanctions"]
    assert store.documents(source_root="root")[0].chunks == len(store.chunk_ids("sanctions"))


def test_reads_from_another_thread(store):
    chunks = put(store, "sanctions", SANCTIONS)
    out = {}

    def work():
        out["ids"] = found(store, "sanctions")
        out["rows"] = store.get_chunks([c.chunk_id for c in chunks])

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert out["ids"] and set(out["rows"]) == {c.chunk_id for c in chunks}


def test_keyword_search_scores_a_bounded_number_of_rows_rarest_terms_first(tmp_path, monkeypatch):
    """On a large index terms join the match rarest first within a row budget; the rarest always does."""
    import index.docstore as docstore_module
    from index.chunking import chunk_text

    monkeypatch.setattr(docstore_module, "KEYWORD_ROW_BUDGET", 10)
    store = DocStore(tmp_path / "big.sqlite3", "hash:256")
    for i in range(40):
        extra = " The walrus envoy arrived." if i == 17 else ""
        text = f"China discussed defense matters in meeting number {i}.{extra}\n"
        store.replace_document(doc_id=f"d{i}.txt", source_root="/r", title="t", date=None, url=None,
                               content_hash=str(i), text=text, chunks=chunk_text(f"d{i}.txt", text, 120, 0))
    assert store._selective_terms(["china", "defense", "walrus"]) == ["walrus"]
    assert store._selective_terms(["china", "defense", "walrus", "envoy"]) == ["walrus", "envoy"]
    assert store.keyword_search("China defense walrus", 5)[0][0].startswith("d17.txt")
    assert len(store.keyword_search("China defense", 50)) == 40  # only common terms: the rarest still searches
    monkeypatch.setattr(docstore_module, "KEYWORD_ROW_BUDGET", 1000)  # a small index uses every term
    assert store._selective_terms(["china", "defense", "walrus"]) == ["china", "defense", "walrus"]
    assert store.is_empty() is False and store.approximate_chunk_count() >= 40


def test_replacing_returns_the_chunk_ids_of_the_version_it_replaced(store):
    assert store.replace_document(doc_id="harbour", source_root="r", title="H", date=None, url=None,
                                  content_hash="1", text=HARBOUR, chunks=chunk_text("harbour", HARBOUR, 12, 0)) == []
    first = store.chunk_ids("harbour")
    edited = HARBOUR.replace("two piers", "three piers")
    replaced = store.replace_document(doc_id="harbour", source_root="r", title="H", date=None, url=None,
                                      content_hash="2", text=edited, chunks=chunk_text("harbour", edited, 12, 0))
    assert sorted(replaced) == sorted(first) and store.chunk_ids("harbour") != first
