"""Incremental, per-document-atomic ingestion.

For every supported file under a root: load and clean it, hash the stored
text together with the chunking settings, and skip it when the docstore holds
that hash already (no embedding, no write). New or changed documents are
chunked; vectors of chunks whose text is unchanged are reused, the rest are
embedded in batches that span documents (the encoder is the bottleneck).

Write order per document, so a crash never exposes half of one:
 1. upsert the new chunk vectors into Chroma (invisible: no docstore rows yet);
 2. commit the docstore transaction (text, chunk rows, keyword entries):
    from here on the new version is what retrieval sees;
 3. delete the old version's vectors that the new one does not reuse.
A crash between steps leaves orphan vectors, which retrieval ignores (it only
returns chunks the docstore knows) and the next run sweeps.

Files that vanished from a root, or can no longer be read, are removed from
the index (``prune``). Document ids are paths relative to the root, so the
same root re-ingested maps onto the same ids; an id already owned by another
root whose file still exists is refused (skipped), and taken over when that
root no longer has it (the folder moved).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from llama_index.core import Document
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.schema import TextNode
from tqdm import tqdm

from index.chunking import OffsetSentenceChunker, text_hash
from index.docstore import DocStore
from index.loaders import UnreadableFileError, supported
from index.parsing import FileParser, InProcessParser
from index.vectors import VectorIndex
from rag.errors import InvalidInputError
from rag.settings import ChunkSettings
from rag.types import Chunk

log = logging.getLogger(__name__)

EmbedProgress = Callable[[int, int], None]  # (chunks embedded, chunks to embed) of the current batch of files

# bump when cleaning, chunking or metadata reading changes meaning: the next ingest reads every file again
# (vectors of unchanged chunk texts are reused). 2: a document's date only from a date line or dateline.
PIPELINE_VERSION = "2"


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_written: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"added {len(self.added)}, updated {len(self.updated)}, unchanged {len(self.unchanged)}, "
                f"removed {len(self.removed)}, skipped {len(self.skipped)}; chunks written {self.chunks_written} "
                f"(embedded {self.chunks_embedded}, reused {self.chunks_reused}); {self.seconds:.1f} s")


@dataclass
class _Pending:
    doc_id: str
    document: Document
    content_hash: str
    chunks: list[Chunk]
    vectors: dict[str, list[float]]
    is_new: bool


class Ingestor:
    def __init__(self, docstore: DocStore, vectors: VectorIndex, embedder: BaseEmbedding,
                 chunking: ChunkSettings, batch_size: int = 32, parser: FileParser | None = None) -> None:
        self.docstore = docstore
        self.parser = parser or InProcessParser()
        self.vectors = vectors
        self.embedder = embedder
        self.chunker = OffsetSentenceChunker(size=chunking.size, overlap=chunking.overlap)
        self.batch_size = batch_size
        self._signature = f"v{PIPELINE_VERSION}:{chunking.size}:{chunking.overlap}"

    # ---- public -------------------------------------------------------------

    def ingest_path(self, path: Path, *, prune: bool = True, progress: bool = False) -> IngestReport:
        """Bring the index in line with the files under ``path`` (a folder or one file)."""
        path = Path(path).expanduser()
        if not path.exists():
            raise InvalidInputError(f"no such file or folder: {path}", path=str(path))
        if path.is_file():
            file = path.resolve()
            # Keep the id it has when its folder was ingested before ("sub/deep.txt", not "deep.txt").
            roots = [Path(r) for r in self.docstore.source_roots() if file.is_relative_to(r)]
            root = max(roots, key=lambda r: len(r.parts)) if roots else file.parent
            files = [file]
            prune = False  # one file says nothing about its siblings
        else:
            root = path.resolve()
            files = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p, root))
        named = [(p.relative_to(root).as_posix(), p) for p in files]
        return self.ingest_files(named, source_root=str(root), prune=prune, progress=progress)

    def ingest_files(self, files: list[tuple[str, Path]], *, source_root: str, prune: bool = False,
                     progress: bool = False, sweep: bool = True,
                     on_embedded: EmbedProgress | None = None) -> IngestReport:
        """Ingest ``(doc_id, path)`` pairs; with ``prune``, drop documents of ``source_root`` not listed.

        ``sweep`` reconciles the stores before and after (a whole-folder run); adding single files beside
        other writers must not, since another file's vectors are unreferenced until its commit.
        ``on_embedded(done, total)`` is called after each embedding batch; an exception it raises stops
        the run before the batch's documents are committed (their vectors are left for the next sweep).
        """
        started = time.perf_counter()
        report = IngestReport()
        if sweep:
            self.reconcile()
        pending: list[_Pending] = []
        seen: set[str] = set()  # readable files: what stays indexed under this root
        bar = tqdm(total=len(files), unit="file", desc="ingest", disable=not progress, leave=False)
        log_step = max(1, len(files) // 10)  # without a bar (a server's log), report every ~10%
        for done, (doc_id, file) in enumerate(files, 1):
            bar.update(1)
            if not progress and len(files) >= 20 and done % log_step == 0:
                log.info("ingest: %d/%d files, %d chunks embedded", done, len(files), report.chunks_embedded)
            owner = self.docstore.source_root_of(doc_id)
            if owner is not None and owner != source_root:
                if (Path(owner) / doc_id).exists():
                    self._skip(report, doc_id, f"a document with this id was ingested from {owner}; "
                                               "remove or rename one of them")
                    continue
                self.docstore.set_source_root(doc_id, source_root)  # its old folder is gone: moved
            if not supported(file):
                self._skip(report, doc_id, f"unsupported file type {file.suffix or '(none)'}")
                continue
            try:
                document = self.parser.load(file)
            except UnreadableFileError as exc:
                self._skip(report, doc_id, exc.message)
                continue
            except Exception as exc:  # a reader library failing on one file must not stop the run
                self._skip(report, doc_id, f"unreadable ({type(exc).__name__}: {exc})")
                continue
            seen.add(doc_id)
            item = self._prepare(doc_id, document)
            if item is not None and not item.chunks:
                seen.discard(doc_id)
                self._skip(report, doc_id, "no sentences to index")
                continue
            if item is None:
                report.unchanged.append(doc_id)
                continue
            pending.append(item)
            if sum(len(p.chunks) for p in pending) >= self.batch_size * 4:
                self._flush(pending, source_root, report, on_embedded)
                pending = []
            bar.set_postfix(embedded=report.chunks_embedded)
        self._flush(pending, source_root, report, on_embedded)
        bar.close()
        if prune:
            for stored in self.docstore.documents(source_root=source_root):
                if stored.doc_id not in seen:
                    self.remove(stored.doc_id)
                    report.removed.append(stored.doc_id)
        if sweep:
            self.reconcile()
        report.seconds = time.perf_counter() - started
        return report

    def remove(self, doc_id: str) -> None:
        """Delete a document: invisible first (docstore), then its vectors."""
        ids = self.docstore.delete_document(doc_id)
        self.vectors.delete(ids)

    def reconcile(self) -> int:
        """Make Chroma hold exactly the docstore's chunks.

        Vectors the docstore does not know (left by an interrupted run) are
        deleted; documents with vectors missing (a Chroma store lost or
        replaced) are marked stale so this run embeds them again.
        Returns the number of orphan vectors deleted.
        """
        if self.vectors.count() == self.docstore.chunk_count():
            return 0
        known = set(self.docstore.chunk_ids())
        stored = set(self.vectors.all_ids())
        orphans = sorted(stored - known)
        self.vectors.delete(orphans)
        missing = known - stored
        if missing:
            stale = self.docstore.documents_of_chunks(missing)
            log.warning("%d document(s) lost their vectors; re-embedding them", len(stale))
            self.docstore.mark_stale(stale)
        return len(orphans)

    # ---- steps --------------------------------------------------------------

    def _skip(self, report: IngestReport, doc_id: str, reason: str) -> None:
        log.warning("skipped %s: %s", doc_id, reason)
        report.skipped.append((doc_id, reason))

    def _prepare(self, doc_id: str, document: Document) -> _Pending | None:
        content_hash = hashlib.sha256(f"{self._signature}\n{document.text}".encode()).hexdigest()
        old_hash = self.docstore.content_hash(doc_id)
        if old_hash == content_hash:
            return None
        document.metadata["doc_id"] = doc_id
        nodes = self.chunker.get_nodes_from_documents([document])
        chunks = [Chunk(chunk_id=n.node_id, doc_id=doc_id, start=n.start_char_idx, end=n.end_char_idx,
                        text=n.get_content()) for n in nodes]
        old = self.docstore.chunks_of(doc_id) if old_hash else []
        reusable = self.vectors.embeddings([c.chunk_id for c in old])
        by_text = {c.text_hash: reusable[c.chunk_id] for c in old if c.chunk_id in reusable}
        vectors = {c.chunk_id: by_text[text_hash(c.text)] for c in chunks if text_hash(c.text) in by_text}
        return _Pending(doc_id, document, content_hash, chunks, vectors, old_hash is None)

    def _flush(self, pending: list[_Pending], source_root: str, report: IngestReport,
               on_embedded: EmbedProgress | None = None) -> None:
        if not pending:
            return
        todo = [(p, c) for p in pending for c in p.chunks if c.chunk_id not in p.vectors]
        if on_embedded is not None:
            on_embedded(0, len(todo))
        for i in range(0, len(todo), self.batch_size):
            batch = todo[i:i + self.batch_size]
            embeddings = self.embedder.get_text_embedding_batch([c.text for _, c in batch])
            for (p, c), vec in zip(batch, embeddings):
                p.vectors[c.chunk_id] = vec
            if on_embedded is not None:
                on_embedded(i + len(batch), len(todo))
        report.chunks_embedded += len(todo)
        embedded_here = {id(c) for _, c in todo}
        # 1. every new vector in one Chroma call (its per-call cost dwarfs the per-vector one);
        #    invisible until step 2 commits the document that owns it.
        self.vectors.add([TextNode(id_=c.chunk_id, text=c.text, embedding=p.vectors[c.chunk_id],
                                   metadata={"doc_id": p.doc_id, "start": c.start, "end": c.end})
                          for p in pending for c in p.chunks])
        stale: list[str] = []
        for p in pending:
            # 2. one transaction per document: from here on its new version is what retrieval sees.
            meta = p.document.metadata
            replaced = self.docstore.replace_document(
                doc_id=p.doc_id, source_root=source_root, title=meta.get("title") or p.doc_id,
                date=meta.get("date"), url=meta.get("url"), content_hash=p.content_hash,
                text=p.document.text, chunks=p.chunks)
            new_ids = {c.chunk_id for c in p.chunks}
            # what the commit replaced, not what was there when this run began: another writer (a CLI
            # ingest, another replica) may have written a version in between, whose vectors are now stale
            stale += [cid for cid in replaced if cid not in new_ids]
            report.chunks_reused += sum(1 for c in p.chunks if id(c) not in embedded_here)
            report.chunks_written += len(p.chunks)
            (report.added if p.is_new else report.updated).append(p.doc_id)
        # 3. the old versions' vectors that nothing uses any more.
        self.vectors.delete(stale)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)
