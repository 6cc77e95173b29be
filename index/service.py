"""The composition root: opens the stores and wires the ask pipeline, and the
one facade the edges use. The CLI, the API, the evaluation and the benchmarks
all start from :class:`RagService` and call its operations (ask, retrieve,
documents, ingest, …); none of them opens or reaches into a store. It lives
in ``index/`` because it is the one place that joins the stores (``index/``)
to the core (``rag/``), and the core must not import the stores."""

from __future__ import annotations

import os
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Callable, Iterator, Protocol

from llama_index.core.embeddings import BaseEmbedding

from index.docstore import DocStore, StoredDocument
from index.pg_docstore import PostgresDocStore, redact, reset_database
from index.ingest import Ingestor, IngestReport
from index.parsing import build_parser
from index.vectors import VectorIndex
from rag.answerability import Assessment, Assessor
from rag.answering.extractive import ExtractiveAnswerer
from rag.answering.local import LocalModelAnswerer
from rag.answering.openai_chat import OpenAIChatAnswerer
from rag.embeddings import build_embedder
from rag.errors import InvalidInputError, NotFoundError
from rag.pipeline import AskPipeline, Event
from rag.retrieval import HybridRetriever, Retrieval, Retriever
from rag.sentence_vectors import SentenceVectors
from rag.settings import Settings
from rag.support import SupportChecker
from rag.types import Answer, Hit


class RagService:
    def __init__(self, settings: Settings, embedder: BaseEmbedding | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or build_embedder(settings.embed)
        self.vectors, self.docstore = open_stores(settings, self.embedder.model_id)
        self.sentence_vectors = SentenceVectors(self.embedder)
        self._locks_guard = threading.Lock()
        self._doc_locks: dict[str, threading.Lock] = {}

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.docstore, self.vectors, self.embedder, self.settings.chunk,
                        batch_size=self.settings.embed.batch_size, parser=build_parser(self.settings.parse))

    @cached_property
    def background_ingestor(self) -> Ingestor:
        """The ingestor of upload jobs: its own embedder with ``RAG_API_JOB_THREADS`` threads (the in-process
        model only; a remote embedder is shared) and its own parser, so a job leaves serving its cores."""
        s = self.settings
        embedder = self.embedder
        if s.embed.provider == "onnx":
            embedder = build_embedder(s.embed.model_copy(update={"threads": s.api.job_threads}))
        return Ingestor(self.docstore, self.vectors, embedder, s.chunk, batch_size=s.embed.batch_size,
                        parser=build_parser(s.parse))

    @cached_property
    def retriever(self) -> HybridRetriever:
        return HybridRetriever(self.vectors, self.docstore, self.embedder, self.settings.retrieve)

    @cached_property
    def pipeline(self) -> AskPipeline:
        return self.build_pipeline(self.retriever, is_empty=self.docstore.is_empty)

    def build_pipeline(self, retriever: Retriever, is_empty: Callable[[], bool] = lambda: False) -> AskPipeline:
        """The ask pipeline over ``retriever`` with this service's answerers, judge and verification (the
        evaluation's baseline uses it with its own retriever, so the two differ only in retrieval)."""
        s = self.settings
        return AskPipeline(
            s, retriever,
            {"extractive": lambda: ExtractiveAnswerer(s.answer, self.sentence_vectors),
             "openai": lambda: OpenAIChatAnswerer(s.llm),
             "local": lambda: LocalModelAnswerer(s.llm, s.local, Path(s.data_dir))},
            SupportChecker(s.verify, self.sentence_vectors), is_empty=is_empty,
            assessor=Assessor(self.sentence_vectors, self.docstore))

    def ingest(self, path: Path | None = None, *, prune: bool = True, progress: bool = False) -> IngestReport:
        return self.ingestor.ingest_path(path or self.settings.corpus_dir, prune=prune, progress=progress)

    # ---- asking -------------------------------------------------------------

    def ask(self, question: str, top_k: int | None = None, mode: str | None = None) -> Answer:
        return self.pipeline.ask(question, top_k=top_k, mode=mode)

    def ask_stream(self, question: str, top_k: int | None = None, mode: str | None = None) -> Iterator[Event]:
        """See :meth:`AskPipeline.ask_stream`: bad input raises here, before the first event."""
        return self.pipeline.ask_stream(question, top_k=top_k, mode=mode)

    def retrieve(self, question: str, top_k: int | None = None) -> Retrieval:
        return self.retriever.retrieve(question, top_k)

    def assess(self, question: str, retrieval: Retrieval) -> Assessment:
        return self.pipeline.assessor.assess(question, retrieval, self.min_confidence)

    @property
    def min_confidence(self) -> float:
        return self.pipeline.min_confidence

    @property
    def checker(self) -> SupportChecker:
        return self.pipeline.checker

    def start_answerer(self, mode: str) -> None:
        """Make the answerer of ``mode`` ready (the local model assembled and its server started)."""
        answerer = self.pipeline.answerer(mode)
        if isinstance(answerer, OpenAIChatAnswerer):
            answerer.client  # noqa: B018 — connects (the local answerer starts its server)

    # ---- the index, read ------------------------------------------------------

    def passage(self, chunk_id: str) -> Hit | None:
        """A stored passage by chunk id (unscored), or None."""
        record = self.docstore.get_chunks([chunk_id]).get(chunk_id)
        return None if record is None else record.as_hit()

    def documents(self, source_root: str | None = None) -> list[StoredDocument]:
        return self.docstore.documents(source_root=source_root)

    def text_of(self, doc_id: str) -> str | None:
        """A document's stored text (citation offsets index into it), or None for an unknown id."""
        return self.docstore.text_of(doc_id)

    def term_document_counts(self, terms: list[str], cap: int = 1000) -> dict[str, int]:
        """How many chunks contain each term (up to ``cap``): the keyword index's statistics."""
        return self.docstore.term_document_counts(terms, cap=cap)

    def document_count(self) -> int:
        return self.docstore.document_count()

    def chunk_count(self) -> int:
        return self.docstore.chunk_count()

    @property
    def vector_store(self) -> object:
        """The llama-index vector store over the collection (the evaluation's baseline reads it)."""
        return self.vectors.store

    def check_store(self) -> None:
        """Raise :class:`StoreUnavailableError` when the vector store or the docstore cannot be reached."""
        self.vectors.heartbeat()
        self.docstore.document_count()

    def stores(self) -> dict[str, str]:
        """Where the vectors and the documents live (no passwords), for /readyz."""
        chroma = self.settings.chroma
        scheme = "https" if chroma.ssl else "http"
        vectors = (f"chroma {scheme}://{chroma.host}:{chroma.port} ({chroma.collection})" if chroma.host
                   else f"chroma embedded ({chroma.collection})")
        url = self.settings.database_url
        documents = f"postgresql {redact(url.get_secret_value())}" if url is not None else "sqlite embedded"
        return {"vectors": vectors, "documents": documents}

    # ---- documents ----------------------------------------------------------

    @property
    def uploads_dir(self) -> Path:
        return Path(self.settings.data_dir) / "uploads"

    def document(self, doc_id: str) -> StoredDocument:
        stored = self.docstore.document(doc_id)
        if stored is None:
            raise NotFoundError(f"no document {doc_id!r}", doc_id=doc_id)
        return stored

    def add_files(self, files: list[tuple[str, bytes]], progress: AddProgress | None = None,
                  background: bool = False) -> list[FileResult]:
        """Ingest uploaded files (name, content) through the same incremental pipeline.

        Each file is written to a temporary name, ingested under its final id,
        and only then moved into ``uploads/``: a file that fails leaves nothing
        behind and the previous version, if any, untouched. With a shared
        database (``RAG_DATABASE_URL``) no file is kept: the database holds the
        document's text, so every replica serves and deletes it alike. ``progress`` hears
        of each file's start, embedding batches and result; ``background`` embeds
        with the background embedder (fewer threads: serving keeps the cores).
        """
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        names = [upload_name(name) for name, _ in files]  # every name is checked before anything is ingested
        ingestor = self.background_ingestor if background else self.ingestor
        results = []
        for i, ((name, content), doc_id) in enumerate(zip(files, names)):
            if progress is not None:
                progress.started(i)
            on_embedded = None if progress is None else partial(progress.embedded, i)
            with self._document_lock(doc_id):
                result = self._add_file(ingestor, name, doc_id, content, on_embedded)
            results.append(result)
            if progress is not None:
                progress.finished(i, result)
        return results

    def _add_file(self, ingestor: Ingestor, name: str, doc_id: str, content: bytes,
                  on_embedded: Callable[[int, int], None] | None) -> FileResult:
        final = self.uploads_dir / doc_id
        fd, tmp_name = tempfile.mkstemp(dir=self.uploads_dir, prefix=".upload-", suffix=Path(doc_id).suffix)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
            shared = self.settings.database_url is not None  # the database holds the text: no file kept here
            source_root = SHARED_UPLOADS if shared else str(self.uploads_dir.resolve())
            report = ingestor.ingest_files([(doc_id, tmp)], source_root=source_root, sweep=False,
                                           on_embedded=on_embedded)
            if report.skipped:
                reason = report.skipped[0][1].replace(tmp.name, doc_id)  # name the file the user sent
                return FileResult(name, doc_id, "skipped", reason)
            try:
                if not shared:
                    os.replace(tmp, final)
            except OSError:
                if report.added:  # no index entry without its file
                    ingestor.remove(doc_id)
                raise
            status = "added" if report.added else "updated" if report.updated else "unchanged"
            return FileResult(name, doc_id, status, None, len(self.docstore.chunk_ids(doc_id)))
        finally:
            tmp.unlink(missing_ok=True)

    @contextmanager
    def _document_lock(self, doc_id: str) -> Iterator[None]:
        """One writer per document id in this process (two uploads of one name must not interleave)."""
        with self._locks_guard:
            lock = self._doc_locks.setdefault(doc_id, threading.Lock())
        with lock:
            yield

    def delete_document(self, doc_id: str) -> None:
        """Remove a document from the index (and its uploaded file, if it was uploaded)."""
        with self._document_lock(doc_id):
            stored = self.document(doc_id)
            self.ingestor.remove(doc_id)
            if Path(stored.source_root) == self.uploads_dir.resolve():
                (self.uploads_dir / doc_id).unlink(missing_ok=True)

    def close(self) -> None:
        for name in ("ingestor", "background_ingestor"):
            if name in self.__dict__:  # built on first use
                self.__dict__[name].parser.close()
        self.docstore.close()


class AddProgress(Protocol):
    """What :meth:`RagService.add_files` reports of each file (``index``: its place in the upload)."""

    def started(self, index: int) -> None: ...

    def embedded(self, index: int, done: int, total: int) -> None: ...

    def finished(self, index: int, result: FileResult) -> None: ...


@dataclass
class FileResult:
    filename: str
    doc_id: str
    status: str  # added | updated | unchanged | skipped
    reason: str | None = None
    chunks: int | None = None


MAX_NAME_BYTES = 200


#: The source root of documents uploaded to a shared database: a name, not a folder of any one replica.
SHARED_UPLOADS = "uploads (shared database)"


def upload_name(filename: str) -> str:
    """A safe document id for an uploaded file: its base name, no path, no hidden names, not too long."""
    name = Path(filename.replace("\\", "/")).name.strip()
    if not name or name.startswith(".") or name in {"..", "."}:
        raise InvalidInputError(f"unusable file name {filename!r}", filename=filename)
    if any(ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        raise InvalidInputError(f"file name {filename!r} holds control or invalid characters",
                                filename=filename.encode("utf-8", "backslashreplace").decode())
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidInputError(f"file name longer than {MAX_NAME_BYTES} bytes", filename=filename[:80] + "…")
    return name


def docstore_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / f"{settings.chroma.collection}.sqlite3"


def open_docstore(settings: Settings, model_id: str) -> DocStore | PostgresDocStore:
    """The embedded SQLite docstore, or the PostgreSQL one when ``RAG_DATABASE_URL`` is set."""
    if settings.database_url is not None:
        return PostgresDocStore(settings.database_url.get_secret_value(), model_id)
    return DocStore(docstore_path(settings), model_id)


def open_stores(settings: Settings, model_id: str) -> tuple[VectorIndex, DocStore | PostgresDocStore]:
    """The configured vector index and docstore (vectors first: an unreachable store creates nothing). For
    the service, and for store-level studies and benchmarks that write or read the stores directly."""
    vectors = VectorIndex(settings.chroma, Path(settings.data_dir))
    return vectors, open_docstore(settings, model_id)


def reset_index(settings: Settings) -> None:
    """Delete the configured collection and its docstore (for a model change or a fresh start)."""
    VectorIndex.drop(settings.chroma, Path(settings.data_dir))
    if settings.database_url is not None:
        reset_database(settings.database_url.get_secret_value())
        return
    base = docstore_path(settings)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{base}{suffix}").unlink(missing_ok=True)
