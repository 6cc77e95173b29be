-- The shared docstore: documents, chunk rows and the BM25 keyword index (terms per chunk).
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY,
    source_root TEXT NOT NULL,
    title TEXT NOT NULL,
    date TEXT,
    url TEXT,
    content_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    text TEXT NOT NULL,
    ingested_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX documents_source_root ON documents (source_root);
CREATE TABLE chunks (
    id BIGSERIAL PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES documents (doc_id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text_hash TEXT NOT NULL,
    length INTEGER NOT NULL  -- tokens, for BM25's length normalisation
);
CREATE INDEX chunks_doc ON chunks (doc_id);
-- BM25 needs each term's frequency in each chunk: one row per (term, chunk), found by term
CREATE TABLE chunk_terms (
    term TEXT NOT NULL,
    chunk BIGINT NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    tf INTEGER NOT NULL,
    PRIMARY KEY (term, chunk)
);
CREATE INDEX chunk_terms_chunk ON chunk_terms (chunk);
-- corpus totals for BM25, and a counter every document change bumps (replicas drop their caches on a change)
CREATE TABLE corpus (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    chunks BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    version BIGINT NOT NULL
);
INSERT INTO corpus VALUES (1, 0, 0, 0);
