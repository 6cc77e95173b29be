"""Incremental ingestion against the real stores: SQLite docstore and an
embedded Chroma ``PersistentClient``, both in ``tmp_path``; hash embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.embeddings import HashEmbedding
from rag.errors import IndexEmptyError, IndexMismatchError, InvalidInputError

CHANGED = "001_c2d313378d47ce4e.txt"
DELETED = "003_fa1d9f4716c12055.txt"
APPENDED = "The zebra quartet rehearsed in Reykjavik for the ambassador on Tuesday."


def doc_ids(corpus: Path) -> list[str]:
    return sorted(p.name for p in corpus.glob("*.txt"))


def chunk_map(service) -> dict[str, list[str]]:
    return {d.doc_id: service.docstore.chunk_ids(d.doc_id) for d in service.docstore.documents()}


def assert_stores_agree(service) -> None:
    """Chroma holds exactly the chunks the docstore knows."""
    assert service.vectors.count() == service.docstore.chunk_count()
    assert sorted(service.vectors.all_ids()) == sorted(service.docstore.chunk_ids())


@pytest.fixture
def ingested(service, corpus_dir, embedder):
    report = service.ingest(corpus_dir)
    assert sorted(report.added) == doc_ids(corpus_dir)
    embedder.reset()
    return service


def test_first_ingest_adds_every_document(service, corpus_dir, embedder):
    report = service.ingest(corpus_dir)

    assert sorted(report.added) == doc_ids(corpus_dir)
    assert report.updated == report.unchanged == report.removed == report.skipped == []
    assert service.docstore.document_count() == 5
    total = service.docstore.chunk_count()
    assert total > 5  # each article is several chunks
    assert report.chunks_written == report.chunks_embedded == total
    assert report.chunks_reused == 0
    assert len(embedder.texts) == total
    assert_stores_agree(service)
    for stored in service.docstore.documents():
        assert stored.chunks == len(service.docstore.chunk_ids(stored.doc_id)) > 0


def test_chunk_offsets_are_exact_in_stored_text(ingested):
    service = ingested
    for stored in service.docstore.documents():
        text = service.docstore.document(stored.doc_id).text
        chunks = service.docstore.chunks_of(stored.doc_id)
        assert chunks
        for chunk in chunks:
            assert chunk.text == text[chunk.start:chunk.end]
            assert chunk.text.strip() == chunk.text and chunk.text


def test_reingest_unchanged_embeds_nothing(ingested, corpus_dir, embedder):
    service = ingested
    before = chunk_map(service)
    vectors_before = service.vectors.embeddings(service.docstore.chunk_ids())

    report = service.ingest(corpus_dir)

    assert sorted(report.unchanged) == doc_ids(corpus_dir)
    assert report.added == report.updated == report.removed == []
    assert report.chunks_embedded == report.chunks_written == 0
    assert embedder.calls == 0 and embedder.texts == []
    assert chunk_map(service) == before
    assert service.vectors.embeddings(service.docstore.chunk_ids()).keys() == vectors_before.keys()
    assert_stores_agree(service)


def test_appended_sentence_updates_only_that_document(ingested, corpus_dir, embedder):
    service = ingested
    before = chunk_map(service)
    old_ids = before[CHANGED]
    old_vectors = service.vectors.embeddings(old_ids)
    assert service.docstore.keyword_search("zebra Reykjavik", 5) == []

    path = corpus_dir / CHANGED
    path.write_text(path.read_text(encoding="utf-8") + "\n" + APPENDED + "\n", encoding="utf-8")
    report = service.ingest(corpus_dir)

    assert report.updated == [CHANGED]
    assert sorted(report.unchanged) == sorted(set(doc_ids(corpus_dir)) - {CHANGED})
    assert report.added == report.removed == []
    after = chunk_map(service)
    for doc_id in before:
        if doc_id != CHANGED:
            assert after[doc_id] == before[doc_id], doc_id

    new_ids = after[CHANGED]
    kept = [cid for cid in new_ids if cid in set(old_ids)]
    # All chunks but the tail are byte-identical: same ids, vectors reused.
    assert len(kept) >= len(old_ids) - 1 > 0
    assert new_ids[:len(kept)] == kept
    assert report.chunks_reused >= len(kept)
    assert 1 <= report.chunks_embedded <= 2
    assert report.chunks_written == len(new_ids) == report.chunks_reused + report.chunks_embedded
    # Only the new text went to the encoder, and it holds the appended sentence.
    assert len(embedder.texts) == report.chunks_embedded
    assert any(APPENDED in t for t in embedder.texts)
    assert all(old_vectors[cid] == pytest.approx(v) for cid, v in service.vectors.embeddings(kept).items())

    stored_text = service.docstore.document(CHANGED).text
    assert APPENDED in stored_text
    hits = service.docstore.keyword_search("zebra quartet Reykjavik", 5)
    assert hits and hits[0][0] in new_ids and hits[0][0] not in old_ids
    hit_chunk = service.docstore.get_chunks([hits[0][0]])[hits[0][0]]
    assert APPENDED in hit_chunk.text
    # The replaced tail chunk is gone from both stores.
    for gone in set(old_ids) - set(new_ids):
        assert service.vectors.embeddings([gone]) == {}
        assert service.docstore.get_chunks([gone]) == {}
    assert_stores_agree(service)


def test_deleted_file_is_removed_from_both_stores(ingested, corpus_dir):
    service = ingested
    gone_ids = service.docstore.chunk_ids(DELETED)
    assert gone_ids

    (corpus_dir / DELETED).unlink()
    report = service.ingest(corpus_dir)

    assert report.removed == [DELETED]
    assert sorted(report.unchanged) == doc_ids(corpus_dir)
    assert service.docstore.document(DELETED) is None
    assert service.docstore.chunk_ids(DELETED) == []
    assert service.docstore.get_chunks(gone_ids) == {}
    assert service.vectors.embeddings(gone_ids) == {}
    assert service.docstore.document_count() == 4
    assert_stores_agree(service)
    hits = service.pipeline.retriever.retrieve("China's ambassador to the United States held a rare meeting").hits
    assert hits and all(h.doc_id != DELETED for h in hits)


def test_unsupported_and_binary_files_are_skipped(service, corpus_dir):
    (corpus_dir / "notes.xyz").write_text("China and the United States talk about defence.", encoding="utf-8")
    (corpus_dir / "blob.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    (corpus_dir / "blank.txt").write_text("   \n\n  \n", encoding="utf-8")

    report = service.ingest(corpus_dir)

    assert sorted(report.added) == sorted(set(doc_ids(corpus_dir)) - {"blob.txt", "blank.txt"})
    skipped = dict(report.skipped)
    assert set(skipped) == {"notes.xyz", "blob.txt", "blank.txt"}
    assert ".xyz" in skipped["notes.xyz"] and "unsupported" in skipped["notes.xyz"]
    assert "binary" in skipped["blob.txt"]
    assert "no text" in skipped["blank.txt"]
    assert all(skipped.values())
    for name in skipped:
        assert service.docstore.document(name) is None
    assert service.docstore.document_count() == 5
    assert_stores_agree(service)

    again = service.ingest(corpus_dir)  # skipped again, still no crash, nothing else touched
    assert dict(again.skipped).keys() == skipped.keys()
    assert len(again.unchanged) == 5


def test_missing_path_is_invalid_input(service, tmp_path):
    with pytest.raises(InvalidInputError):
        service.ingest(tmp_path / "does-not-exist")


def test_ingesting_one_file_does_not_prune_the_others(ingested, corpus_dir):
    service = ingested
    before = chunk_map(service)

    same = service.ingest(corpus_dir / CHANGED)
    assert same.unchanged == [CHANGED]  # same doc id as when the folder was ingested
    assert same.added == same.updated == same.removed == []

    extra = corpus_dir / "005_extra.txt"
    extra.write_text("Observers say the zebra quartet toured Reykjavik.\n\nThey played three concerts.\n",
                     encoding="utf-8")
    report = service.ingest(extra)

    assert report.added == ["005_extra.txt"]
    assert report.removed == []
    after = chunk_map(service)
    assert {k: v for k, v in after.items() if k != "005_extra.txt"} == before
    assert service.docstore.document_count() == 6
    assert_stores_agree(service)

    # prune=False on a folder keeps documents whose files vanished.
    (corpus_dir / DELETED).unlink()
    kept = service.ingest(corpus_dir, prune=False)
    assert kept.removed == []
    assert service.docstore.document(DELETED) is not None
    pruned = service.ingest(corpus_dir)
    assert pruned.removed == [DELETED]
    assert_stores_agree(service)


def test_crash_between_vector_write_and_docstore_commit(ingested, corpus_dir, monkeypatch):
    service = ingested
    old_ids = service.docstore.chunk_ids(CHANGED)
    old_text = service.docstore.document(CHANGED).text
    old_count = service.docstore.chunk_count()
    vectors_before = service.vectors.count()
    question = "zebra quartet rehearsed in Reykjavik for the ambassador"

    real_replace = service.docstore.replace_document
    calls: list[str] = []

    def crash(**kwargs):
        calls.append(kwargs["doc_id"])
        # Step 1 has happened: the new version's vectors are in Chroma already.
        assert service.vectors.count() > vectors_before
        raise RuntimeError("simulated crash before the docstore commit")

    monkeypatch.setattr(service.docstore, "replace_document", crash)
    path = corpus_dir / CHANGED
    path.write_text(path.read_text(encoding="utf-8") + "\n" + APPENDED + "\n", encoding="utf-8")

    with pytest.raises(RuntimeError, match="simulated crash"):
        service.ingest(corpus_dir)
    assert calls == [CHANGED]

    # Nothing of the new version is visible: docstore untouched, orphans ignored.
    assert service.docstore.document(CHANGED).text == old_text
    assert service.docstore.chunk_ids(CHANGED) == old_ids
    assert service.docstore.chunk_count() == old_count
    assert service.vectors.count() > old_count  # orphan vectors of the new tail exist
    orphans = set(service.vectors.all_ids()) - set(service.docstore.chunk_ids())
    assert orphans and all(o.startswith(CHANGED + ":") for o in orphans)
    dense = {cid for cid, _ in service.vectors.query(service.embedder.get_query_embedding(question), 50)}
    assert dense & orphans  # the orphan is what Chroma finds best ...
    hits = service.pipeline.retriever.retrieve(question, top_k=10).hits
    assert hits
    known = set(service.docstore.chunk_ids())
    assert all(h.chunk_id in known for h in hits)  # ... yet retrieval never returns it
    assert not any(APPENDED in h.text for h in hits)
    assert service.docstore.keyword_search("zebra Reykjavik", 5) == []

    monkeypatch.setattr(service.docstore, "replace_document", real_replace)
    report = service.ingest(corpus_dir)

    assert report.updated == [CHANGED]
    assert APPENDED in service.docstore.document(CHANGED).text
    assert_stores_agree(service)
    hits = service.pipeline.retriever.retrieve(question).hits
    assert any(APPENDED in h.text for h in hits)


def test_sweep_removes_orphans_left_by_a_crash(ingested, corpus_dir, monkeypatch):
    service = ingested

    def crash(**kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(service.docstore, "replace_document", crash)
    path = corpus_dir / CHANGED
    path.write_text(path.read_text(encoding="utf-8") + "\n" + APPENDED + "\n", encoding="utf-8")
    with pytest.raises(RuntimeError):
        service.ingest(corpus_dir)
    monkeypatch.undo()
    # The file is put back, so the next run has nothing to write: only the sweep cleans up.
    path.write_text((Path(__file__).parents[2] / "data" / "corpus" / CHANGED).read_text(encoding="utf-8"),
                    encoding="utf-8")
    assert service.vectors.count() > service.docstore.chunk_count()

    report = service.ingest(corpus_dir)

    assert len(report.unchanged) == 5 and report.chunks_written == 0
    assert_stores_agree(service)
    assert service.ingestor.reconcile() == 0


def test_reopened_service_sees_the_same_index(ingested, corpus_dir, make_settings, make_service):
    service = ingested
    ids = sorted(service.docstore.chunk_ids())
    service.close()

    reopened = make_service(make_settings())
    assert sorted(reopened.docstore.chunk_ids()) == ids
    assert reopened.vectors.count() == len(ids)
    report = reopened.ingest(corpus_dir)
    assert len(report.unchanged) == 5 and report.chunks_embedded == 0


def test_ask_on_empty_index_raises(service):
    assert service.docstore.chunk_count() == 0
    with pytest.raises(IndexEmptyError) as info:
        service.ask("Who proposed a phone call with the Chinese defense minister?")
    assert info.value.code == "index_empty"


def test_ask_after_ingest_cites_exact_offsets(ingested):
    service = ingested
    answer = service.ask("Who proposed a phone call with the Chinese defense minister?")
    assert answer.answerable
    assert answer.citations
    for citation in answer.citations:
        text = service.docstore.document(citation.doc_id).text
        assert citation.quote == text[citation.start:citation.end]
    assert "Austin" in answer.answer


def test_other_formats_hidden_files_and_subfolders(service, tmp_path):
    root = tmp_path / "mixed"
    (root / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "sub" / "glaciers.md").write_text(
        "# Glaciers of Patagonia\n\nThe **Perito Moreno** glacier advances about two metres a day. "
        "See [the park site](https://example.org/park) for visiting hours.\n", encoding="utf-8")
    (root / "page.html").write_text(
        "<html><head><title>Harbour news</title><script>var tracking = 1;</script></head><body>"
        "<nav>Home | About</nav><article><h1>Sydney harbour bridge repairs</h1>"
        "<p>Engineers replaced four hundred rivets on the harbour bridge last winter.</p></article>"
        "<footer>Copyright</footer></body></html>", encoding="utf-8")
    (root / ".hidden.txt").write_text("Secret notes about volcanoes.\n", encoding="utf-8")
    (root / ".git" / "config.txt").write_text("Repository configuration text.\n", encoding="utf-8")

    report = service.ingest(root)

    assert sorted(report.added) == ["page.html", "sub/glaciers.md"]
    assert report.skipped == []
    md = service.docstore.document("sub/glaciers.md")
    assert md.title == "Glaciers of Patagonia"
    assert "**" not in md.text and "](" not in md.text and "the park site" in md.text
    html = service.docstore.document("page.html")
    assert html.title == "Sydney harbour bridge repairs"
    assert "tracking" not in html.text and "Home | About" not in html.text
    for question in ("How fast does the Perito Moreno glacier advance?",
                     "How many rivets did engineers replace on the harbour bridge?"):
        answer = service.ask(question)
        assert answer.answerable, question
        for c in answer.citations:
            assert c.quote == service.docstore.document(c.doc_id).text[c.start:c.end]
    assert_stores_agree(service)


def test_small_batches_flush_midway_with_the_same_result(make_settings, make_service, corpus_dir, tmp_path,
                                                         counting_embedder):
    big = make_service(make_settings(), embedder=counting_embedder())
    big_report = big.ingest(corpus_dir)
    ids = sorted(big.docstore.chunk_ids())
    big.close()

    settings = make_settings(data_dir=tmp_path / "small")
    settings.embed.batch_size = 1  # flushes every 4 chunks, embeds one text per call
    counting = counting_embedder()
    small = make_service(settings, embedder=counting)
    report = small.ingest(corpus_dir)

    assert sorted(report.added) == sorted(big_report.added)
    assert report.chunks_embedded == big_report.chunks_embedded == len(ids)
    assert sorted(small.docstore.chunk_ids()) == ids
    assert len(counting.texts) == counting.calls == len(ids)
    assert_stores_agree(small)


def test_new_chunk_settings_rechunk_everything_and_reuse_equal_texts(ingested, corpus_dir, make_settings,
                                                                   make_service, counting_embedder):
    service = ingested
    before = set(service.docstore.chunk_ids())
    service.close()

    settings = make_settings()
    settings.chunk.overlap = 0
    counting = counting_embedder()
    rechunked = make_service(settings, embedder=counting)
    report = rechunked.ingest(corpus_dir)

    assert sorted(report.updated) == doc_ids(corpus_dir)  # the settings are part of the content hash
    after = set(rechunked.docstore.chunk_ids())
    assert after != before
    same_text = after & before  # a chunk id names its text, so these texts are unchanged
    assert same_text and report.chunks_reused >= len(same_text)
    assert report.chunks_embedded == len(counting.texts) == report.chunks_written - report.chunks_reused
    assert_stores_agree(rechunked)
    for doc in rechunked.docstore.documents():
        chunks = rechunked.docstore.chunks_of(doc.doc_id)
        for a, b in zip(chunks, chunks[1:]):
            assert a.end <= b.start  # no overlap any more


def test_a_new_pipeline_version_rereads_every_document_and_embeds_nothing(ingested, corpus_dir, make_settings,
                                                                         make_service, counting_embedder,
                                                                         monkeypatch):
    """How a change to cleaning or metadata reaches stored documents: their text and chunks are the same, so
    every vector is reused, but each document is read again (here: a date found anew)."""
    import index.ingest
    import index.loaders

    service = ingested
    chunks_before = chunk_map(service)
    service.close()
    monkeypatch.setattr(index.ingest, "PIPELINE_VERSION", index.ingest.PIPELINE_VERSION + "-next")
    monkeypatch.setattr(index.loaders, "find_date", lambda text: "1999-12-31")
    counting = counting_embedder()
    reread = make_service(make_settings(), embedder=counting)
    report = reread.ingest(corpus_dir)

    assert sorted(report.updated) == doc_ids(corpus_dir)
    assert report.chunks_embedded == len(counting.texts) == 0
    assert chunk_map(reread) == chunks_before
    assert {d.date for d in reread.docstore.documents()} == {"1999-12-31"}
    assert_stores_agree(reread)


def test_other_embedding_model_is_refused_until_reset(ingested, corpus_dir, make_settings, make_service):
    from index.service import reset_index

    service = ingested
    service.close()
    settings = make_settings()

    with pytest.raises(IndexMismatchError) as info:
        make_service(settings, embedder=HashEmbedding(dim=128))
    assert info.value.details == {"built_with": "hash:256", "configured": "hash:128"}

    reset_index(settings)
    fresh = make_service(settings, embedder=HashEmbedding(dim=128))
    assert fresh.docstore.chunk_count() == 0 and fresh.vectors.count() == 0
    report = fresh.ingest(corpus_dir)
    assert len(report.added) == 5
    assert_stores_agree(fresh)
    assert len(next(iter(fresh.vectors.embeddings(fresh.docstore.chunk_ids()[:1]).values()))) == 128
    assert fresh.ask("Who proposed a phone call with the Chinese defense minister?").answerable


def test_crash_while_pruning_leaves_orphans_that_the_next_run_sweeps(ingested, corpus_dir, monkeypatch):
    service = ingested
    gone = service.docstore.chunk_ids(DELETED)
    (corpus_dir / DELETED).unlink()

    def fail(chunk_ids):
        raise RuntimeError("simulated crash while deleting vectors")

    monkeypatch.setattr(service.vectors, "delete", fail)
    with pytest.raises(RuntimeError, match="simulated crash"):
        service.ingest(corpus_dir)
    monkeypatch.undo()

    # Invisible first: the docstore forgot the document, its vectors are orphans.
    assert service.docstore.document(DELETED) is None
    assert set(service.vectors.embeddings(gone)) == set(gone)
    hits = service.pipeline.retriever.retrieve("China's ambassador to the United States held a rare meeting").hits
    assert all(h.doc_id != DELETED for h in hits)

    report = service.ingest(corpus_dir)
    assert report.removed == []  # nothing left to remove from the docstore ...
    assert service.vectors.embeddings(gone) == {}  # ... but the sweep deleted the vectors
    assert_stores_agree(service)


def test_same_file_name_in_two_folders_is_refused_not_overwritten(service, tmp_path):
    site_a, site_b = tmp_path / "siteA", tmp_path / "siteB"
    site_a.mkdir()
    site_b.mkdir()
    (site_a / "index.txt").write_text("Engineers replaced rivets on the Sydney harbour bridge.\n", encoding="utf-8")
    (site_b / "index.txt").write_text("Volcanic eruptions closed airports across Iceland.\n", encoding="utf-8")

    service.ingest(site_a)
    report_b = service.ingest(site_b)

    assert report_b.updated == [] and report_b.added == []  # nothing of siteA is touched
    assert [doc for doc, _ in report_b.skipped] == ["index.txt"]
    assert str(site_a) in report_b.skipped[0][1]
    assert service.docstore.keyword_search("Sydney harbour rivets", 5)  # siteA's text still findable
    assert not service.docstore.keyword_search("Volcanic Iceland", 5)


def test_a_moved_folder_takes_over_its_documents(service, tmp_path):
    old, new = tmp_path / "old-place", tmp_path / "new-place"
    old.mkdir()
    (old / "a.txt").write_text("Engineers replaced rivets on the Sydney harbour bridge.\n", encoding="utf-8")
    service.ingest(old)
    old.rename(new)

    report = service.ingest(new)

    assert report.unchanged == ["a.txt"] and report.chunks_embedded == 0
    assert service.docstore.source_root_of("a.txt") == str(new.resolve())
    (new / "a.txt").unlink()
    assert service.ingest(new).removed == ["a.txt"]


def test_single_nested_file_reingest_does_not_duplicate(service, tmp_path):
    root = tmp_path / "kb"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "deep.txt").write_text("Glaciers are retreating quickly in Patagonia.\n", encoding="utf-8")
    (root / "top.txt").write_text("The harbour bridge was repaired last winter.\n", encoding="utf-8")
    service.ingest(root)

    report = service.ingest(root / "sub" / "deep.txt")

    assert report.added == []
    assert service.docstore.document_count() == 2
    hits = service.pipeline.retriever.retrieve("glaciers retreating Patagonia").hits
    assert len({h.text for h in hits}) == len(hits)


def test_a_document_of_more_chunks_than_chromas_batch_limit_is_ingested_and_reingested(tmp_path):
    """Chroma refuses more than its max batch size (5,461 embedded) in one call: writes go in batches."""
    from index.docstore import DocStore
    from index.ingest import Ingestor
    from index.vectors import VectorIndex
    from rag.embeddings import HashEmbedding
    from rag.settings import ChromaSettings, ChunkSettings

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "big.txt").write_text(" ".join(f"Entry {i} of the long register lists item {i}." for i in range(12000)))
    vectors = VectorIndex(ChromaSettings(), tmp_path / "data")
    store = DocStore(tmp_path / "data" / "docs.sqlite3", "hash:256")
    ingestor = Ingestor(store, vectors, HashEmbedding(), ChunkSettings(size=20, overlap=0), batch_size=256)
    report = ingestor.ingest_path(corpus)
    assert report.added == ["big.txt"] and report.chunks_written > vectors._client.get_max_batch_size()
    assert vectors.count() == store.chunk_count() == report.chunks_written
    (corpus / "big.txt").write_text((corpus / "big.txt").read_text() + " One more entry closes the register.")
    again = ingestor.ingest_path(corpus)  # the old vectors are read back in batches for reuse
    assert again.updated == ["big.txt"] and again.chunks_reused >= report.chunks_written - 2
    assert vectors.count() == store.chunk_count()
    store.close()


def test_two_writers_of_one_document_leave_no_stale_vectors(service, tmp_path):
    """Two ingestions of one document that both plan before either commits (a CLI ingest beside the server,
    or two replicas): the one that commits last removes the vectors of the version it replaced, even though
    that version did not exist when it began."""
    import threading

    from index.ingest import Ingestor
    from rag.embeddings import HashEmbedding

    class MeetingEmbedder(HashEmbedding):
        """Embeds only once both writers are embedding: both have planned against the same old state."""

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            meeting.wait(timeout=30)
            return super()._get_text_embeddings(texts)

    meeting = threading.Barrier(2)
    settings = service.settings
    writers = [Ingestor(service.docstore, service.vectors, MeetingEmbedder(), settings.chunk) for _ in range(2)]
    files = []
    for i, place in enumerate(("Ostermoor", "Fennick Cross")):
        path = tmp_path / f"v{i}" / "note.txt"
        path.parent.mkdir()
        path.write_text("".join(f"On day {d} the survey team measured the marker near {place} again.\n"
                                for d in range(80)))
        files.append(path)
    errors: list[BaseException] = []

    def write(ingestor: Ingestor, path: Path) -> None:
        try:
            ingestor.ingest_files([("note.txt", path)], source_root=str(tmp_path), sweep=False)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w, f)) for w, f in zip(writers, files)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert service.docstore.chunk_count() > 2
    assert_stores_agree(service)  # the loser's vectors were deleted by the winner's commit


def test_a_query_that_meets_a_vector_deleted_under_it_is_tried_again(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from chromadb.errors import InternalError
    from llama_index.core.schema import TextNode

    from index import vectors as vectors_module
    from index.vectors import VectorIndex
    from rag.errors import StoreUnavailableError
    from rag.settings import ChromaSettings

    vectors = VectorIndex(ChromaSettings(), tmp_path / "data")
    vectors.add([TextNode(id_=f"c{i}", text=f"t{i}", embedding=HashEmbedding().encode([f"text {i}"])[0].tolist())
                 for i in range(5)])
    real_query, failures = vectors.store.query, []

    def racing(request, failures_left: list[int]):
        if failures_left[0]:
            failures_left[0] -= 1
            failures.append(1)
            raise InternalError("Error executing plan: Internal error: Error finding id")
        return real_query(request)

    query = HashEmbedding().encode(["text 3"])[0].tolist()
    left = [vectors_module.QUERY_ATTEMPTS - 1]
    monkeypatch.setattr(vectors, "store", SimpleNamespace(query=lambda request: racing(request, left)))
    assert vectors.query(query, 2)[0][0] == "c3"  # lost the race twice, answered the third time
    assert len(failures) == vectors_module.QUERY_ATTEMPTS - 1

    left[0] = vectors_module.QUERY_ATTEMPTS  # it keeps failing: the store is reported unavailable
    with pytest.raises(StoreUnavailableError, match="Error finding id"):
        vectors.query(query, 2)

    def broken(request):
        failures.append(1)
        raise InternalError("Database error: disk I/O error")

    failures.clear()
    monkeypatch.setattr(vectors, "store", SimpleNamespace(query=broken))
    with pytest.raises(StoreUnavailableError):
        vectors.query(query, 2)
    assert len(failures) == 1  # any other failure is not tried again
