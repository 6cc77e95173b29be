"""``rag migrate --to postgresql://…``: move an index from the embedded docstore to a PostgreSQL server, and its
vectors to another Chroma (a ``chroma run`` server) when one is named, without embedding anything again.

Each document is copied as ingestion writes it: its vectors first (when they move), then its text, chunks and
keyword entries in one transaction on the target. A document the target already holds with the same content
hash and chunks is left alone, so an interrupted migration is finished by running it again. At the end the
counts are compared: documents and chunks in both docstores, and every chunk's vector in the target Chroma.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from llama_index.core.schema import TextNode
from tqdm import tqdm

from index.docstore import DocStore
from index.pg_docstore import PostgresDocStore, redact
from index.vectors import VectorIndex
from rag.errors import IndexMismatchError, InvalidInputError
from rag.settings import ChromaSettings, Settings


@dataclass
class MigrationReport:
    source: str
    target: str
    documents: int = 0
    copied: int = 0
    unchanged: int = 0
    chunks: int = 0
    vectors_copied: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "counts match" if self.ok else "COUNTS DIFFER: " + "; ".join(self.problems)
        return (f"{self.documents} documents ({self.copied} copied, {self.unchanged} already there), {self.chunks} "
                f"chunks, {self.vectors_copied} vectors copied, from {self.source} to {self.target} in "
                f"{self.seconds:.1f} s; {verdict}")


def _same_chroma(a: ChromaSettings, b: ChromaSettings) -> bool:
    return (a.host, a.port if a.host else None, a.ssl if a.host else None, a.collection) == (
        b.host, b.port if b.host else None, b.ssl if b.host else None, b.collection)


def migrate_index(source: Settings, to_url: str, chroma: ChromaSettings | None = None, *,
                  progress: bool = False) -> MigrationReport:
    """Copy the index of ``source`` (embedded docstore) to the database at ``to_url``, and its vectors to
    ``chroma`` when that is another Chroma than the source's."""
    from rag.embeddings import build_embedder

    if not to_url.startswith(("postgresql://", "postgres://")):
        raise InvalidInputError("--to takes a postgresql:// URL", to=redact(to_url))
    if source.database_url is not None:
        raise InvalidInputError("the source index is already on PostgreSQL (RAG_DATABASE_URL is set): unset it "
                                "to migrate the embedded index in RAG_DATA_DIR")
    from index.service import docstore_path

    path = docstore_path(source)
    if not path.exists():
        raise InvalidInputError(f"no embedded index at {path}: run `rag ingest` first", path=str(path))
    target_chroma = chroma or source.chroma
    move_vectors = not _same_chroma(source.chroma, target_chroma)
    model_id = build_embedder(source.embed).model_id
    started = time.perf_counter()
    report = MigrationReport(source=str(path), target=redact(to_url))
    src_docs = DocStore(path, model_id)
    src_vectors = VectorIndex(source.chroma, Path(source.data_dir))
    dst_vectors = VectorIndex(target_chroma, Path(source.data_dir)) if move_vectors else src_vectors
    dst_docs = PostgresDocStore(to_url, model_id)
    try:
        documents = src_docs.documents()
        for stored in tqdm(documents, desc="migrating", unit="doc", disable=not progress):
            doc = src_docs.document(stored.doc_id)
            chunks = src_docs.chunks_of(stored.doc_id)
            ids = [c.chunk_id for c in chunks]
            if dst_docs.content_hash(doc.doc_id) == doc.content_hash and dst_docs.chunk_ids(doc.doc_id) == ids \
                    and (not move_vectors or len(dst_vectors.embeddings(ids)) == len(ids)):
                report.unchanged += 1
                continue
            if move_vectors:  # 1. vectors first: invisible until the document's transaction commits
                vectors = src_vectors.embeddings(ids)
                missing = [i for i in ids if i not in vectors]
                if missing:
                    raise IndexMismatchError(f"the source index lacks the vectors of {len(missing)} chunk(s) of "
                                             f"{doc.doc_id!r}: run `rag ingest` to repair it first", doc_id=doc.doc_id)
                dst_vectors.add([TextNode(id_=c.chunk_id, text=c.text, embedding=vectors[c.chunk_id],
                                          metadata={"doc_id": c.doc_id, "start": c.start, "end": c.end})
                                 for c in chunks])
                report.vectors_copied += len(chunks)
            previous = set(dst_docs.chunk_ids(doc.doc_id))
            # 2. text, chunks and keyword entries in one transaction
            dst_docs.replace_document(doc_id=doc.doc_id, source_root=doc.source_root, title=doc.title,
                                      date=doc.date, url=doc.url, content_hash=doc.content_hash, text=doc.text,
                                      chunks=chunks)
            stale = sorted(previous - set(ids))
            if stale and move_vectors:  # 3. vectors of an older version on the target
                dst_vectors.delete(stale)
            report.copied += 1
        report.documents = len(documents)
        report.chunks = src_docs.chunk_count()
        _check_counts(report, src_docs, dst_docs, dst_vectors, documents)
    finally:
        dst_docs.close()
        src_docs.close()
    report.seconds = time.perf_counter() - started
    return report


def _check_counts(report: MigrationReport, src: DocStore, dst: PostgresDocStore, vectors: VectorIndex,
                  documents: list) -> None:
    source_ids = {d.doc_id for d in documents}
    target_ids = {d.doc_id for d in dst.documents()}
    if target_ids != source_ids:
        report.problems.append(f"documents: {len(source_ids)} in the source, {len(target_ids)} in the target "
                               f"({len(target_ids - source_ids)} only there, {len(source_ids - target_ids)} missing)")
    if dst.chunk_count() != src.chunk_count():
        report.problems.append(f"chunks: {src.chunk_count()} in the source, {dst.chunk_count()} in the target")
    ids = dst.chunk_ids()
    found = sum(len(vectors.embeddings(ids[i:i + 1000])) for i in range(0, len(ids), 1000))
    if found != len(ids):
        report.problems.append(f"vectors: {len(ids) - found} of the target's {len(ids)} chunks have none")
