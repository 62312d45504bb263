"""The BM25 full-text index inside PostgreSQL: an impact-ordered postings table kept by triggers on
ingestion_chunk, and lexeme statistics (document frequency, corpus size and length) kept as an append-only
delta log that a maintenance step folds into totals.

Why triggers: every path that writes passages (ingestion, the benchmarks' COPY, an admin's SQL) keeps the
index right without knowing it exists. They are statement-level with transition tables, so a bulk insert
of 5,000 passages costs one set-based INSERT of postings, not 5,000 trigger calls.

Why a delta log for the statistics: a counter row per lexeme (and one for the corpus) would be updated by
every ingestion transaction and held locked until it commits, serialising concurrent workers (and risking
deadlocks). Appending deltas never conflicts; readers add the pending deltas to the folded totals, so the
figures are exact at all times, and `search_lexeme_stats_compact()` only keeps the log short.

Ordering key (`impact`): BM25's saturated, length-normalised term frequency with k1 0.9, b 0.4 and a fixed
reference passage length of 100 tokens. It only decides which postings of a term are read first; the final
score is recomputed exactly (current average length, IDF) from tf and dl, so the fixed reference never
drifts into the scores.
"""

from django.db import migrations

FORWARD = r"""
CREATE TABLE search_posting (
    lexeme text NOT NULL,
    chunk_id bigint NOT NULL,
    document_id bigint NOT NULL,
    tf integer NOT NULL,
    dl integer NOT NULL,
    impact real NOT NULL,
    CONSTRAINT search_posting_pkey PRIMARY KEY (chunk_id, lexeme) INCLUDE (tf, dl)
);
-- Read in impact order per lexeme, index only: document_id for the filters (no chunk lookup), tf and dl
-- for the score.
CREATE INDEX search_posting_impact ON search_posting (lexeme, impact DESC, chunk_id) INCLUDE (document_id, tf, dl);

-- lexeme '' holds the corpus row: docs = passages, tokens = their total length.
CREATE TABLE search_lexeme_stat (
    lexeme text PRIMARY KEY,
    docs bigint NOT NULL,
    tokens bigint NOT NULL
);
CREATE TABLE search_lexeme_delta (
    lexeme text NOT NULL,
    docs bigint NOT NULL,
    tokens bigint NOT NULL
);
CREATE INDEX search_lexeme_delta_lexeme ON search_lexeme_delta (lexeme);

CREATE FUNCTION search_bm25_impact(tf integer, dl integer) RETURNS real
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (tf * 1.9 / (tf + 0.9 * (0.6 + 0.4 * dl / 100.0)))::real;

CREATE FUNCTION search_postings_add(ids bigint[], document_ids bigint[], vectors tsvector[]) RETURNS void
LANGUAGE sql AS $$
    WITH terms AS (
        SELECT v.id AS chunk_id, v.document_id, u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf
        FROM unnest(ids, document_ids, vectors) AS v(id, document_id, vector), unnest(v.vector) AS u
    ),
    sized AS (SELECT *, sum(tf) OVER (PARTITION BY chunk_id)::integer AS dl FROM terms),
    added AS (
        INSERT INTO search_posting (lexeme, chunk_id, document_id, tf, dl, impact)
        SELECT lexeme, chunk_id, document_id, tf, dl, search_bm25_impact(tf, dl) FROM sized
        RETURNING lexeme, chunk_id, tf, dl
    )
    INSERT INTO search_lexeme_delta (lexeme, docs, tokens)
    SELECT lexeme, count(*), sum(tf) FROM added GROUP BY lexeme
    UNION ALL
    SELECT '', count(*), coalesce(sum(dl), 0) FROM (SELECT DISTINCT chunk_id, dl FROM added) c
    HAVING count(*) > 0;
$$;

CREATE FUNCTION search_postings_remove(ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM search_posting WHERE chunk_id = ANY(ids) RETURNING lexeme, chunk_id, tf, dl
    )
    INSERT INTO search_lexeme_delta (lexeme, docs, tokens)
    SELECT lexeme, -count(*), -sum(tf) FROM gone GROUP BY lexeme
    UNION ALL
    SELECT '', -count(*), -coalesce(sum(dl), 0) FROM (SELECT DISTINCT chunk_id, dl FROM gone) c
    HAVING count(*) > 0;
$$;

CREATE FUNCTION search_postings_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    removed bigint[];
    added bigint[];
    added_documents bigint[];
    added_vectors tsvector[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(id), array_agg(document_id), array_agg(search_vector)
        INTO added, added_documents, added_vectors FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(id) INTO removed FROM old_rows;
    ELSE
        -- Only passages whose words changed: re-embedding or renumbering leaves the index alone.
        SELECT array_agg(o.id), array_agg(n.id), array_agg(n.document_id), array_agg(n.search_vector)
        INTO removed, added, added_documents, added_vectors
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.search_vector IS DISTINCT FROM n.search_vector OR o.document_id <> n.document_id;
    END IF;
    IF removed IS NOT NULL THEN
        PERFORM search_postings_remove(removed);
    END IF;
    IF added IS NOT NULL THEN
        PERFORM search_postings_add(added, added_documents, added_vectors);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION search_postings_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE search_posting, search_lexeme_stat, search_lexeme_delta;
    RETURN NULL;
END $$;

CREATE TRIGGER search_postings_insert AFTER INSERT ON ingestion_chunk
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_postings_sync();
CREATE TRIGGER search_postings_update AFTER UPDATE ON ingestion_chunk
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_postings_sync();
CREATE TRIGGER search_postings_delete AFTER DELETE ON ingestion_chunk
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_postings_sync();
CREATE TRIGGER search_postings_truncate AFTER TRUNCATE ON ingestion_chunk
    FOR EACH STATEMENT EXECUTE FUNCTION search_postings_truncate();

-- Folds the delta log into the totals. Concurrent runs are safe: a row deleted by one is skipped by
-- the other, so no delta counts twice.
CREATE FUNCTION search_lexeme_stats_compact() RETURNS bigint
LANGUAGE sql AS $$
    WITH moved AS (DELETE FROM search_lexeme_delta RETURNING lexeme, docs, tokens),
    sums AS (SELECT lexeme, sum(docs) AS docs, sum(tokens) AS tokens FROM moved GROUP BY lexeme),
    folded AS (
        INSERT INTO search_lexeme_stat AS s (lexeme, docs, tokens) SELECT lexeme, docs, tokens FROM sums
        ON CONFLICT (lexeme) DO UPDATE SET docs = s.docs + EXCLUDED.docs, tokens = s.tokens + EXCLUDED.tokens
        RETURNING 1
    )
    SELECT count(*) FROM folded;
$$;

-- Passages already present when the index is created (one pass, no arrays: the table may be large).
CREATE FUNCTION search_postings_rebuild() RETURNS void
LANGUAGE sql AS $$
    TRUNCATE search_posting, search_lexeme_stat, search_lexeme_delta;
    INSERT INTO search_posting (lexeme, chunk_id, document_id, tf, dl, impact)
    SELECT lexeme, chunk_id, document_id, tf, dl, search_bm25_impact(tf, dl) FROM (
        SELECT t.*, sum(t.tf) OVER (PARTITION BY t.chunk_id)::integer AS dl FROM (
            SELECT c.id AS chunk_id, c.document_id, u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf
            FROM ingestion_chunk c, unnest(c.search_vector) AS u
        ) t
    ) s;
    INSERT INTO search_lexeme_stat (lexeme, docs, tokens)
    SELECT lexeme, count(*), sum(tf) FROM search_posting GROUP BY lexeme;
    INSERT INTO search_lexeme_stat (lexeme, docs, tokens)
    SELECT '', count(*), coalesce(sum(dl), 0) FROM (SELECT DISTINCT chunk_id, dl FROM search_posting) c;
$$;
SELECT search_postings_rebuild();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS search_postings_insert ON ingestion_chunk;
DROP TRIGGER IF EXISTS search_postings_update ON ingestion_chunk;
DROP TRIGGER IF EXISTS search_postings_delete ON ingestion_chunk;
DROP TRIGGER IF EXISTS search_postings_truncate ON ingestion_chunk;
DROP FUNCTION IF EXISTS search_postings_sync();
DROP FUNCTION IF EXISTS search_postings_truncate();
DROP FUNCTION IF EXISTS search_postings_add(bigint[], bigint[], tsvector[]);
DROP FUNCTION IF EXISTS search_postings_remove(bigint[]);
DROP FUNCTION IF EXISTS search_lexeme_stats_compact();
DROP FUNCTION IF EXISTS search_postings_rebuild();
DROP FUNCTION IF EXISTS search_bm25_impact(integer, integer);
DROP TABLE IF EXISTS search_posting, search_lexeme_stat, search_lexeme_delta;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0002_querylog_timings_rerank_tokens"),
        ("ingestion", "0003_document_text_help"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
