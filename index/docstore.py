"""The docstore: stored document text, chunk rows and the BM25 keyword index,
in one SQLite file.

It is the source of truth for what is visible: a chunk exists for retrieval
only once its document's transaction has committed here. Documents, chunk
rows and keyword entries of one document change in a single transaction, so
a crash leaves either the old or the new version, never half of one. The
keyword index is SQLite FTS5 (Porter stemming, BM25 ranking), updated
incrementally per document: nothing is ever rebuilt from scratch.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from index.chunking import text_hash
from rag.errors import IndexMismatchError
from rag.text import STOPWORDS, words
from rag.types import Chunk, Passage

_SCHEMA = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    source_root TEXT NOT NULL,
    title TEXT NOT NULL,
    date TEXT,
    url TEXT,
    content_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    text TEXT NOT NULL,
    ingested_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_fts USING fts5(text, tokenize='porter unicode61');
"""


#: Most rows one keyword search may score (an index this small uses every term). Measured at 100k chunks:
#: keyword p95 14 ms with 5,000, 26 ms with 10,000, 37 ms leaving out only terms in >10% of the chunks.
KEYWORD_ROW_BUDGET = 5000


def rarest_within_budget(terms: list[str], counts: dict[str, int], budget: int) -> list[str]:
    """Terms rarest first while the rows they match stay within ``budget``; the rarest always."""
    keep: list[str] = []
    matched = 0
    for term in sorted(terms, key=lambda t: counts[t]):
        if keep and matched + counts[term] > budget:
            break
        keep.append(term)
        matched += counts[term]
    return keep


@dataclass(frozen=True)
class StoredDocument:
    doc_id: str
    source_root: str
    title: str
    date: str | None
    url: str | None
    content_hash: str
    size: int
    ingested_at: float
    chunks: int
    text: str | None = None


class StoredChunk(Passage):
    """A passage as the docstore holds it, with the hash its embedding is reused by."""

    text_hash: str


class DocStore:
    """Thread-safe access to the docstore file (one connection per thread)."""

    def __init__(self, path: Path, model_id: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        with self._connect() as con:
            con.executescript(_SCHEMA)
        self._check_model(model_id)

    def _connect(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def _check_model(self, model_id: str) -> None:
        con = self._connect()
        row = con.execute("SELECT value FROM meta WHERE key='embed_model'").fetchone()
        if row is None:
            con.execute("INSERT INTO meta VALUES ('embed_model', ?)", (model_id,))
        elif row[0] != model_id:
            raise IndexMismatchError(
                f"the index in {self.path.parent} was built with embedding model {row[0]!r}, "
                f"not {model_id!r}: set RAG_CHROMA_COLLECTION to a new name or run `rag ingest --reset`",
                built_with=row[0], configured=model_id)

    # ---- reads -------------------------------------------------------------

    def content_hash(self, doc_id: str) -> str | None:
        row = self._connect().execute("SELECT content_hash FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def source_root_of(self, doc_id: str) -> str | None:
        row = self._connect().execute("SELECT source_root FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def source_roots(self) -> list[str]:
        return [r[0] for r in self._connect().execute("SELECT DISTINCT source_root FROM documents")]

    def documents_of_chunks(self, chunk_ids: Iterable[str]) -> list[str]:
        ids = list(chunk_ids)
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            rows = self._connect().execute(
                f"SELECT DISTINCT doc_id FROM chunks WHERE chunk_id IN ({','.join('?' * len(part))})", part)
            out.update(r[0] for r in rows)
        return sorted(out)

    def document_count(self) -> int:
        return self._connect().execute("SELECT count(*) FROM documents").fetchone()[0]

    def chunk_count(self) -> int:
        return self._connect().execute("SELECT count(*) FROM chunks").fetchone()[0]

    def documents(self, source_root: str | None = None) -> list[StoredDocument]:
        sql = ("SELECT d.doc_id, d.source_root, d.title, d.date, d.url, d.content_hash, d.size, d.ingested_at, "
               "(SELECT count(*) FROM chunks c WHERE c.doc_id=d.doc_id) FROM documents d")
        args: tuple = ()
        if source_root is not None:
            sql += " WHERE d.source_root=?"
            args = (source_root,)
        return [StoredDocument(*row) for row in self._connect().execute(sql + " ORDER BY d.doc_id", args)]

    def document(self, doc_id: str) -> StoredDocument | None:
        row = self._connect().execute(
            "SELECT d.doc_id, d.source_root, d.title, d.date, d.url, d.content_hash, d.size, d.ingested_at, "
            "(SELECT count(*) FROM chunks c WHERE c.doc_id=d.doc_id), d.text FROM documents d WHERE d.doc_id=?",
            (doc_id,)).fetchone()
        return StoredDocument(*row) if row else None

    def text_of(self, doc_id: str) -> str | None:
        """A document's stored text, or None for an unknown id."""
        stored = self.document(doc_id)
        return stored.text if stored else None

    def chunk_ids(self, doc_id: str | None = None) -> list[str]:
        if doc_id is None:
            return [r[0] for r in self._connect().execute("SELECT chunk_id FROM chunks")]
        return [r[0] for r in self._connect().execute(
            "SELECT chunk_id FROM chunks WHERE doc_id=? ORDER BY ord", (doc_id,))]

    def chunks_of(self, doc_id: str) -> list[StoredChunk]:
        return self._chunks_where("c.doc_id=? ORDER BY c.ord", (doc_id,))

    def get_chunks(self, chunk_ids: Iterable[str]) -> dict[str, StoredChunk]:
        """Visible chunks among ``chunk_ids`` (unknown ids are left out)."""
        ids = list(dict.fromkeys(chunk_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return {c.chunk_id: c for c in self._chunks_where(f"c.chunk_id IN ({marks})", tuple(ids))}

    def _chunks_where(self, where: str, args: tuple) -> list[StoredChunk]:
        rows = self._connect().execute(
            "SELECT c.chunk_id, c.doc_id, d.title, c.start, c.\"end\", substr(d.text, c.start + 1, c.\"end\" - c.start), "
            f"c.text_hash, d.date FROM chunks c JOIN documents d ON d.doc_id=c.doc_id WHERE {where}", args)
        return [StoredChunk(chunk_id=c, doc_id=d, title=t, start=s, end=e, text=x, text_hash=h, date=dt)
                for c, d, t, s, e, x, h, dt in rows]

    def keyword_search(self, query: str, limit: int) -> list[tuple[str, float]]:
        """BM25 over chunk text: ``(chunk_id, score)`` best first (higher is better).

        BM25 scores every row that matches any term, so on a large index
        common words make the query slow while adding little to the ranking
        (their IDF is small). Terms join the match rarest first while the rows
        they match stay within ``KEYWORD_ROW_BUDGET``; the rarest always does.
        """
        terms = self._selective_terms([w for w in dict.fromkeys(words(query)) if w not in STOPWORDS])
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = self._connect().execute(
            "SELECT c.chunk_id, -bm25(chunk_fts) AS score FROM chunk_fts JOIN chunks c ON c.id = chunk_fts.rowid "
            "WHERE chunk_fts MATCH ? ORDER BY bm25(chunk_fts) LIMIT ?", (match, limit))
        return [(r[0], r[1]) for r in rows]

    def _selective_terms(self, terms: list[str]) -> list[str]:
        if len(terms) <= 1 or self.approximate_chunk_count() <= KEYWORD_ROW_BUDGET:
            return terms
        return rarest_within_budget(terms, self.term_document_counts(terms, cap=KEYWORD_ROW_BUDGET + 1),
                                    KEYWORD_ROW_BUDGET)

    def approximate_chunk_count(self) -> int:
        """The largest chunk row id: O(1), at least the chunk count (deleted rows leave gaps)."""
        return self._connect().execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()[0]

    def is_empty(self) -> bool:
        return self._connect().execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is None

    def term_document_counts(self, terms: Iterable[str], cap: int = 1000) -> dict[str, int]:
        """How many chunks contain each term (counted up to ``cap``; enough for IDF)."""
        con = self._connect()
        out: dict[str, int] = {}
        for term in dict.fromkeys(terms):
            match = '"' + term.replace('"', '""') + '"'
            out[term] = con.execute(
                "SELECT count(*) FROM (SELECT 1 FROM chunk_fts WHERE chunk_fts MATCH ? LIMIT ?)", (match, cap)
            ).fetchone()[0]
        return out

    # ---- writes (one transaction per document) -----------------------------

    def replace_document(self, *, doc_id: str, source_root: str, title: str, date: str | None, url: str | None,
                         content_hash: str, text: str, chunks: list[Chunk]) -> list[str]:
        """Swap in a document's new version, chunks and keyword entries atomically; returns the chunk ids of
        the version it replaced (read in the same transaction: another writer may have changed it since)."""
        with self._write_lock:
            con = self._connect()
            con.execute("BEGIN IMMEDIATE")
            try:
                replaced = [r[0] for r in con.execute("SELECT chunk_id FROM chunks WHERE doc_id=?", (doc_id,))]
                self._delete_rows(con, doc_id)
                con.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
                            (doc_id, source_root, title, date, url, content_hash, len(text), text, time.time()))
                for ord_, chunk in enumerate(chunks):
                    cur = con.execute(
                        "INSERT INTO chunks (chunk_id, doc_id, ord, start, \"end\", text_hash) VALUES (?,?,?,?,?,?)",
                        (chunk.chunk_id, doc_id, ord_, chunk.start, chunk.end, text_hash(chunk.text)))
                    con.execute("INSERT INTO chunk_fts (rowid, text) VALUES (?, ?)", (cur.lastrowid, chunk.text))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return replaced

    def delete_document(self, doc_id: str) -> list[str]:
        """Remove a document; returns the chunk ids it had."""
        with self._write_lock:
            con = self._connect()
            con.execute("BEGIN IMMEDIATE")
            try:
                ids = [r[0] for r in con.execute("SELECT chunk_id FROM chunks WHERE doc_id=?", (doc_id,))]
                self._delete_rows(con, doc_id)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return ids

    def set_source_root(self, doc_id: str, source_root: str) -> None:
        with self._write_lock:
            self._connect().execute("UPDATE documents SET source_root=? WHERE doc_id=?", (source_root, doc_id))

    def mark_stale(self, doc_ids: Iterable[str]) -> None:
        """Forget the content hashes of ``doc_ids`` so the next ingest rebuilds them."""
        with self._write_lock:
            self._connect().executemany("UPDATE documents SET content_hash='' WHERE doc_id=?",
                                        [(d,) for d in doc_ids])

    @staticmethod
    def _delete_rows(con: sqlite3.Connection, doc_id: str) -> None:
        con.execute("DELETE FROM chunk_fts WHERE rowid IN (SELECT id FROM chunks WHERE doc_id=?)", (doc_id,))
        con.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        con.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
