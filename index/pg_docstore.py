"""The docstore on a PostgreSQL server (``RAG_DATABASE_URL``): what several API replicas share.

The same operations as the embedded :class:`~index.docstore.DocStore`, and the same guarantees: a
document's text, chunk rows and keyword entries change in one transaction, so a replica (or a crash) sees
the old version or the new one, never half of one; two replicas writing the same document take turns on an
advisory lock held for that transaction.

Keyword ranking is BM25 (k1 1.2, b 0.75, the parameters of SQLite FTS5) computed from a term table: each
chunk's stemmed words with their counts, found by term, and the corpus totals in one row. PostgreSQL's own
``ts_rank`` has no inverse document frequency (it agreed with FTS5's top 10 on 11% of queries in a 50k-chunk
test), and its ``tsvector`` does not expose per-term counts cheaply; the table gives exact BM25 and uses a
B-tree per term. Terms are the words of :func:`rag.text.words` stemmed by :func:`rag.text.stem` (Snowball
English; FTS5 uses Porter: the two differ on a few suffixes).

The schema is created and upgraded by numbered SQL files in ``index/migrations`` (a ``schema_migrations``
table records what ran); replicas starting together serialise on an advisory lock.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from collections import Counter
from contextlib import contextmanager
from importlib import resources
from typing import Iterable, Iterator

from index.chunking import text_hash
from index.docstore import KEYWORD_ROW_BUDGET, StoredChunk, StoredDocument, rarest_within_budget
from rag.errors import IndexMismatchError, StoreUnavailableError
from rag.text import STOPWORDS, stem, words
from rag.types import Chunk

K1, B = 1.2, 0.75
_MIGRATIONS_LOCK = 72_011_001  # advisory lock key: one replica migrates at a time
_DOCUMENT_COLUMNS = ("d.doc_id, d.source_root, d.title, d.date, d.url, d.content_hash, d.size, d.ingested_at, "
                     "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.doc_id)")


def fold(word: str) -> str:
    """A word without its diacritics ("café" → "cafe"), as FTS5's unicode61 tokenizer folds them."""
    if word.isascii():
        return word
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))


def term(word: str) -> str:
    """The keyword entry of a (lower-cased) word: folded, then stemmed."""
    return stem(fold(word))


def index_terms(text: str) -> tuple[Counter[str], int]:
    """A chunk's keyword entries: stemmed non-stopwords with their counts, and its length in words."""
    tokens = words(text)
    return Counter(term(w) for w in tokens if w not in STOPWORDS), len(tokens)


def query_terms(query: str) -> list[str]:
    return list(dict.fromkeys(term(w) for w in words(query) if w not in STOPWORDS))


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration file, in order."""
    out = []
    for entry in resources.files("index.migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            out.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(out)


def redact(url: str) -> str:
    """The URL without its password, for messages and /readyz."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class PostgresDocStore:
    """Thread-safe (a connection pool); every method is one short transaction."""

    def __init__(self, url: str, model_id: str, pool_size: int = 4, timeout_s: float = 5.0) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self._errors = (psycopg.OperationalError, psycopg.InterfaceError)
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, timeout=timeout_s, open=False,
                                    kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout_s))},
                                    check=ConnectionPool.check_connection, name="rag-docstore")
        try:
            self._pool.open(wait=True, timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 (any failure to connect is the same to the caller)
            self._pool.close()
            raise StoreUnavailableError(f"cannot reach the database at {redact(url)}: {exc}") from None
        self.migrate()
        self._check_model(model_id)

    @contextmanager
    def _cursor(self, write: bool = False) -> Iterator:
        """A cursor in a transaction (``write``) or in autocommit; a lost server is StoreUnavailableError."""
        try:
            with self._pool.connection() as con:
                if write:
                    with con.transaction(), con.cursor() as cur:
                        yield cur
                else:
                    with con.cursor() as cur:
                        yield cur
        except self._errors as exc:
            raise StoreUnavailableError(f"the database at {redact(self.url)} is unavailable: {exc}") from None
        except Exception as exc:
            if type(exc).__name__ == "PoolTimeout":
                raise StoreUnavailableError(f"the database at {redact(self.url)} is unavailable: {exc}") from None
            raise

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks, in order; returns the versions applied."""
        applied: list[int] = []
        with self._cursor(write=True) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATIONS_LOCK,))
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                        "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            cur.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in cur.fetchall()}
            for version, name, sql in migrations():
                if version not in done:
                    cur.execute(sql)
                    cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                    applied.append(version)
        return applied

    def schema_version(self) -> int:
        with self._cursor() as cur:
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            return cur.fetchone()[0]

    def _check_model(self, model_id: str) -> None:
        with self._cursor(write=True) as cur:
            cur.execute("INSERT INTO meta VALUES ('embed_model', %s) ON CONFLICT (key) DO NOTHING", (model_id,))
            cur.execute("SELECT value FROM meta WHERE key = 'embed_model'")
            built_with = cur.fetchone()[0]
        if built_with != model_id:
            raise IndexMismatchError(
                f"the index in {redact(self.url)} was built with embedding model {built_with!r}, not {model_id!r}: "
                "use another database or run `rag ingest --reset`", built_with=built_with, configured=model_id)

    # ---- reads -------------------------------------------------------------

    def _one(self, sql: str, args: tuple = ()):
        with self._cursor() as cur:
            cur.execute(sql, args)
            row = cur.fetchone()
        return row[0] if row else None

    def _all(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def content_hash(self, doc_id: str) -> str | None:
        return self._one("SELECT content_hash FROM documents WHERE doc_id = %s", (doc_id,))

    def source_root_of(self, doc_id: str) -> str | None:
        return self._one("SELECT source_root FROM documents WHERE doc_id = %s", (doc_id,))

    def source_roots(self) -> list[str]:
        return [r[0] for r in self._all("SELECT DISTINCT source_root FROM documents")]

    def documents_of_chunks(self, chunk_ids: Iterable[str]) -> list[str]:
        rows = self._all("SELECT DISTINCT doc_id FROM chunks WHERE chunk_id = ANY(%s)", (list(chunk_ids),))
        return sorted(r[0] for r in rows)

    def document_count(self) -> int:
        return self._one("SELECT count(*) FROM documents")

    def chunk_count(self) -> int:
        return self._one("SELECT count(*) FROM chunks")

    def documents(self, source_root: str | None = None) -> list[StoredDocument]:
        where, args = ("WHERE d.source_root = %s", (source_root,)) if source_root is not None else ("", ())
        rows = self._all(f"SELECT {_DOCUMENT_COLUMNS} FROM documents d {where} ORDER BY d.doc_id", args)
        return [StoredDocument(*row) for row in rows]

    def document(self, doc_id: str) -> StoredDocument | None:
        rows = self._all(f"SELECT {_DOCUMENT_COLUMNS}, d.text FROM documents d WHERE d.doc_id = %s", (doc_id,))
        return StoredDocument(*rows[0]) if rows else None

    def text_of(self, doc_id: str) -> str | None:
        return self._one("SELECT text FROM documents WHERE doc_id = %s", (doc_id,))

    def chunk_ids(self, doc_id: str | None = None) -> list[str]:
        if doc_id is None:
            return [r[0] for r in self._all("SELECT chunk_id FROM chunks")]
        return [r[0] for r in self._all("SELECT chunk_id FROM chunks WHERE doc_id = %s ORDER BY ord", (doc_id,))]

    def chunks_of(self, doc_id: str) -> list[StoredChunk]:
        return self._chunks_where("c.doc_id = %s ORDER BY c.ord", (doc_id,))

    def get_chunks(self, chunk_ids: Iterable[str]) -> dict[str, StoredChunk]:
        """Visible chunks among ``chunk_ids`` (unknown ids are left out)."""
        ids = list(dict.fromkeys(chunk_ids))
        if not ids:
            return {}
        return {c.chunk_id: c for c in self._chunks_where("c.chunk_id = ANY(%s)", (ids,))}

    def _chunks_where(self, where: str, args: tuple) -> list[StoredChunk]:
        rows = self._all(
            'SELECT c.chunk_id, c.doc_id, d.title, c.start, c."end", substr(d.text, c.start + 1, c."end" - c.start), '
            f"c.text_hash, d.date FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE {where}", args)
        return [StoredChunk(chunk_id=c, doc_id=d, title=t, start=s, end=e, text=x, text_hash=h, date=dt)
                for c, d, t, s, e, x, h, dt in rows]

    def keyword_search(self, query: str, limit: int) -> list[tuple[str, float]]:
        """BM25 over chunk text: ``(chunk_id, score)`` best first (higher is better). As in the embedded
        store, terms join rarest first while the rows they match stay within ``KEYWORD_ROW_BUDGET`` (document
        frequencies from ``term_stats``). Unlike FTS5, which then still scores the rarest term, a query whose
        every term is in more chunks than that finds nothing here: such terms carry little IDF, and scoring
        their rows (tens of thousands at 100k chunks) took longer than the rest of retrieval; the dense side
        answers such a question alone."""
        terms = query_terms(query)
        if not terms:
            return []
        budget = KEYWORD_ROW_BUDGET
        with self._cursor() as cur:
            cur.execute("SELECT chunks, tokens FROM corpus WHERE id = 1")
            n, tokens = cur.fetchone()
            if not n:
                return []
            cur.execute("SELECT term, df FROM term_stats WHERE term = ANY(%s) AND df > 0", (terms,))
            df = dict(cur.fetchall())
            if not df:
                return []
            chosen = [t for t in rarest_within_budget(sorted(df), df, budget) if df[t] <= budget]
            if not chosen:
                return []
            idf = [_idf(n, df[t]) for t in chosen]
            cur.execute(  # scored by chunk row, the ids looked up for the best ``limit`` only
                "WITH scored AS (SELECT ct.chunk, sum(q.idf * ct.tf * %(k1p1)s / (ct.tf + %(k1)s * (1 - %(b)s + %(b)s * "
                "c.length / %(avgdl)s))) AS score FROM chunk_terms ct JOIN unnest(%(terms)s::text[], %(idf)s::float8[]) "
                "AS q(term, idf) ON q.term = ct.term JOIN chunks c ON c.id = ct.chunk GROUP BY ct.chunk "
                "ORDER BY score DESC LIMIT %(limit)s) "
                "SELECT c.chunk_id, s.score FROM scored s JOIN chunks c ON c.id = s.chunk ORDER BY s.score DESC, c.chunk_id",
                {"k1p1": K1 + 1, "k1": K1, "b": B, "avgdl": max(tokens / n, 1.0), "terms": chosen, "idf": idf,
                 "limit": limit})
            return [(r[0], float(r[1])) for r in cur.fetchall()]

    def approximate_chunk_count(self) -> int:
        return self._one("SELECT chunks FROM corpus WHERE id = 1")

    def is_empty(self) -> bool:
        return not self._all("SELECT 1 FROM chunks LIMIT 1")

    def term_document_counts(self, terms: Iterable[str], cap: int = 1000) -> dict[str, int]:
        """How many chunks contain each term (counted up to ``cap``; enough for IDF)."""
        words_ = list(dict.fromkeys(terms))
        stems = {w: term(w.lower()) for w in words_}
        counts = dict(self._all("SELECT term, df FROM term_stats WHERE term = ANY(%s)", (sorted(set(stems.values())),)))
        return {w: min(counts.get(s, 0), cap) for w, s in stems.items()}

    def version(self) -> int:
        """The change counter: every document written or deleted (by any replica) increases it."""
        return self._one("SELECT version FROM corpus WHERE id = 1")

    # ---- writes (one transaction per document) -----------------------------

    def replace_document(self, *, doc_id: str, source_root: str, title: str, date: str | None, url: str | None,
                         content_hash: str, text: str, chunks: list[Chunk]) -> list[str]:
        """Swap in a document's new version, chunks and keyword entries atomically; returns the chunk ids of
        the version it replaced (read under the document's lock: another replica may have changed it since)."""
        with self._cursor(write=True) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (doc_id,))
            _lock_corpus(cur)
            replaced = self._delete_rows(cur, doc_id)
            cur.execute("INSERT INTO documents VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (doc_id, source_root, title, date, url, content_hash, len(text), text, time.time()))
            entries = [index_terms(chunk.text) for chunk in chunks]
            with cur.copy('COPY chunks (chunk_id, doc_id, ord, start, "end", text_hash, length) FROM STDIN') as copy:
                for ord_, (chunk, (_, length)) in enumerate(zip(chunks, entries)):
                    copy.write_row((chunk.chunk_id, doc_id, ord_, chunk.start, chunk.end, text_hash(chunk.text), length))
            cur.execute("SELECT chunk_id, id FROM chunks WHERE doc_id = %s", (doc_id,))
            row_of = dict(cur.fetchall())
            with cur.copy("COPY chunk_terms (term, chunk, tf) FROM STDIN") as copy:
                for chunk, (counts, _) in zip(chunks, entries):
                    for term, tf in counts.items():
                        copy.write_row((term, row_of[chunk.chunk_id], tf))
            per_term = Counter(term for counts, _ in entries for term in counts)  # chunks holding each term
            terms = sorted(per_term)
            cur.execute("INSERT INTO term_stats (term, df) SELECT * FROM unnest(%s::text[], %s::bigint[]) "
                        "ON CONFLICT (term) DO UPDATE SET df = term_stats.df + EXCLUDED.df",
                        (terms, [per_term[t] for t in terms]))
            cur.execute("UPDATE corpus SET chunks = chunks + %s, tokens = tokens + %s, version = version + 1 "
                        "WHERE id = 1", (len(chunks), sum(length for _, length in entries)))
        return replaced

    def delete_document(self, doc_id: str) -> list[str]:
        """Remove a document; returns the chunk ids it had."""
        with self._cursor(write=True) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (doc_id,))
            _lock_corpus(cur)
            ids = self._delete_rows(cur, doc_id)
            cur.execute("UPDATE corpus SET version = version + 1 WHERE id = 1")
        return ids

    def set_source_root(self, doc_id: str, source_root: str) -> None:
        with self._cursor(write=True) as cur:
            cur.execute("UPDATE documents SET source_root = %s WHERE doc_id = %s", (source_root, doc_id))

    def mark_stale(self, doc_ids: Iterable[str]) -> None:
        """Forget the content hashes of ``doc_ids`` so the next ingest rebuilds them."""
        with self._cursor(write=True) as cur:
            cur.execute("UPDATE documents SET content_hash = '' WHERE doc_id = ANY(%s)", (list(doc_ids),))

    @staticmethod
    def _delete_rows(cur, doc_id: str) -> list[str]:
        cur.execute("SELECT chunk_id, length FROM chunks WHERE doc_id = %s ORDER BY ord", (doc_id,))
        rows = cur.fetchall()
        if rows:
            cur.execute("UPDATE corpus SET chunks = chunks - %s, tokens = tokens - %s WHERE id = 1",
                        (len(rows), sum(length for _, length in rows)))
            cur.execute("UPDATE term_stats s SET df = s.df - x.n FROM (SELECT ct.term, count(*) AS n FROM chunk_terms ct "
                        "JOIN chunks c ON c.id = ct.chunk WHERE c.doc_id = %s GROUP BY ct.term ORDER BY ct.term) x "
                        "WHERE s.term = x.term", (doc_id,))
        cur.execute("DELETE FROM documents WHERE doc_id = %s", (doc_id,))  # chunks and their terms cascade
        return [chunk_id for chunk_id, _ in rows]

    def close(self) -> None:
        self._pool.close()


def _lock_corpus(cur) -> None:
    """Writers take the corpus row first, so the term rows they then update are never taken in another order
    (no deadlocks between writers of different documents; they take turns for the length of a commit)."""
    cur.execute("SELECT 1 FROM corpus WHERE id = 1 FOR UPDATE")


def reset_database(url: str) -> None:
    """Empty the docstore tables (documents, chunks, keyword entries, the recorded model); the schema stays."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as con:
            exists = con.execute("SELECT to_regclass('documents') IS NOT NULL").fetchone()[0]
            if exists:
                with con.transaction():
                    con.execute("TRUNCATE documents, chunks, chunk_terms, meta")
                    if con.execute("SELECT to_regclass('term_stats') IS NOT NULL").fetchone()[0]:
                        con.execute("TRUNCATE term_stats")
                    con.execute("UPDATE corpus SET chunks = 0, tokens = 0, version = version + 1 WHERE id = 1")
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(f"cannot reach the database at {redact(url)}: {exc}") from None


def _idf(n: int, df: int) -> float:
    """FTS5's BM25 IDF: log((N - df + 0.5) / (df + 0.5)), never below a tiny positive value."""
    return max(math.log((n - df + 0.5) / (df + 0.5)), 1e-6)
