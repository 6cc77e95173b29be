-- Document frequency per term, kept in the same transactions as chunk_terms: BM25's IDF without counting rows
-- (a common term is in tens of thousands of chunks; counting them cost more than the search itself).
CREATE TABLE term_stats (
    term TEXT PRIMARY KEY,
    df BIGINT NOT NULL CHECK (df >= 0)
);
INSERT INTO term_stats (term, df) SELECT term, count(*) FROM chunk_terms GROUP BY term;
