"""Benchmark corpora: SciFact through the real ingestion code, topped up with generated filler passages
inserted directly with bulk SQL (COPY), their vectors from the stand-in's hash embedder (word features only).

Filler passages are drawn from SciFact's own vocabulary (word frequencies as in the corpus), so full-text
and vector searches meet realistic posting lists and neighbours rather than empty noise.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

PASSAGES_PER_FILLER_DOCUMENT = 10
FILLER_SLUG = "bench-filler"


def scifact_load(dataset: str, sample: int | None = None, log=print) -> int:
    """SciFact (or its first `sample` documents) in collection beir-<name>, through ingestion.services
    in this process. Returns the collection id."""
    from search.evaluation import beir_collection_slug, beir_ingest, beir_load

    ds = beir_load(Path(dataset), "test")
    if sample:
        ds.corpus = dict(list(ds.corpus.items())[:sample])
    report = beir_ingest(ds, beir_collection_slug(ds.name), in_process=True, log=log)
    return report.collection_id


def _vocabulary(dataset: str, limit_docs: int = 5183) -> tuple[list[str], list[int]]:
    counts: Counter = Counter()
    with open(Path(dataset) / "corpus.jsonl", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n >= limit_docs:
                break
            doc = json.loads(line)
            counts.update(w.strip(".,;:()[]\"'").lower() for w in doc["text"].split())
    counts.pop("", None)
    words, weights = zip(*counts.most_common(30_000), strict=True)
    return list(words), list(weights)


def generated_documents(dataset: str, count: int, *, seed: int = 11):
    """`count` documents `(id, title, text)` drawn from SciFact's vocabulary at its word frequencies, about
    as long as SciFact's abstracts (a title of 6-16 words and 100-300 words of text: 211 words on average,
    SciFact's 215), produced lazily so a 100,000-document import never holds the corpus in memory."""
    words, weights = _vocabulary(dataset)
    cum_weights = list(itertools.accumulate(weights))
    rng = random.Random(seed)
    for n in range(count):
        title = " ".join(rng.choices(words, cum_weights=cum_weights, k=rng.randint(6, 16))).capitalize()
        body = " ".join(rng.choices(words, cum_weights=cum_weights, k=rng.randint(100, 300))) + "."
        yield f"gen-{n}", title, f"{title}\n\n{body}"


BULK_FROM = 20_000  # filler loads at least this large drop the indexes and rebuild them after
BULK_TABLES = ("ingestion_chunk", "ingestion_chunkembedding", "search_posting")


PENDING_TABLE = "bench_index_pending"
POSTINGS_TRIGGER = "search_postings_insert"
# What `search_postings_rebuild()` inserts, for one share of the passages (`c.id % shares = share`), and
# without its window sort: each passage's length is summed from its own tsvector.
_POSTINGS_SHARE_SQL = """
    INSERT INTO search_posting (lexeme, chunk_id, document_id, tf, dl, impact)
    SELECT u.lexeme, c.id, c.document_id, u.tf, l.dl, search_bm25_impact(u.tf, l.dl)
    FROM ingestion_chunk c
    CROSS JOIN LATERAL (
        SELECT sum(coalesce(array_length(v.positions, 1), 1))::integer AS dl FROM unnest(c.search_vector) v
    ) l
    CROSS JOIN LATERAL (
        SELECT v.lexeme, coalesce(array_length(v.positions, 1), 1) AS tf FROM unnest(c.search_vector) v
    ) u
    WHERE c.id %% %s = %s
"""


def postings_rebuild_parallel(shares: int, log=print) -> None:
    """The full-text postings and statistics rebuilt from every passage, as `search_postings_rebuild()`
    does, but in `shares` sessions at once (one per share of the passages) and before the postings' indexes
    exist. Used after a bulk load made with the postings trigger off: per batch, the trigger cost ~8 ms a
    passage under load, this ~1.5 ms in one session."""
    from concurrent.futures import ThreadPoolExecutor

    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE search_posting, search_lexeme_stat, search_lexeme_delta")

    def share(k: int) -> None:
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute("SET work_mem = '256MB'")
            conn.execute(_POSTINGS_SHARE_SQL, [shares, k])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=shares) as pool:
        list(pool.map(share, range(shares)))
    log(f"  postings inserted in {time.perf_counter() - t0:.0f} s ({shares} sessions)")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO search_lexeme_stat (lexeme, docs, tokens) "
            "SELECT lexeme, count(*), sum(tf) FROM search_posting GROUP BY lexeme"
        )
        cursor.execute(
            """
            INSERT INTO search_lexeme_stat (lexeme, docs, tokens)
            SELECT '', count(*), coalesce(sum(l.dl), 0)
            FROM ingestion_chunk c CROSS JOIN LATERAL (
                SELECT sum(coalesce(array_length(v.positions, 1), 1)) AS dl FROM unnest(c.search_vector) v
            ) l
            WHERE length(c.search_vector) > 0
            """
        )


def _secondary_indexes_drop(tables: tuple[str, ...] = BULK_TABLES) -> list[str]:
    """Drop every index of `tables` but the primary keys of the passage tables (their ids arrive in order,
    cheap to maintain) and return the statements that recreate them as they were, read back from the
    catalogue. Constraints (unique, the postings' primary key) are dropped and re-added as constraints.

    The statements are also kept in a table of the database until `_secondary_indexes_restore` has run
    them: a load that is killed midway leaves them there, and the next load restores them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {PENDING_TABLE} (id serial PRIMARY KEY, statement text)")
        cursor.execute(
            """
            SELECT t.relname, i.relname, pg_get_indexdef(i.oid), c.conname, pg_get_constraintdef(c.oid)
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            LEFT JOIN pg_constraint c ON c.conindid = i.oid AND c.conrelid = t.oid
            WHERE t.relname = ANY(%s) AND t.relnamespace = current_schema()::regnamespace
              AND NOT (x.indisprimary AND t.relname <> 'search_posting')
            """,
            [list(tables)],
        )
        for table, index, indexdef, constraint, constraintdef in cursor.fetchall():
            if constraint:
                statement = f'ALTER TABLE "{table}" ADD CONSTRAINT "{constraint}" {constraintdef}'
                drop = f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}"'
            else:
                statement, drop = indexdef, f'DROP INDEX IF EXISTS "{index}"'
            cursor.execute(f"INSERT INTO {PENDING_TABLE} (statement) VALUES (%s)", [statement])
            cursor.execute(drop)
        cursor.execute(f"SELECT statement FROM {PENDING_TABLE} ORDER BY id")
        return [statement for (statement,) in cursor.fetchall()]


def _secondary_indexes_restore(statements: list[str], log=print) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for statement in statements:
            t = time.perf_counter()
            cursor.execute(statement)
            cursor.execute(f"DELETE FROM {PENDING_TABLE} WHERE statement = %s", [statement])
            log(f"  {statement[:90]} ... {time.perf_counter() - t:.0f} s")
        cursor.execute(f"DROP TABLE IF EXISTS {PENDING_TABLE}")


def passages_count() -> int:
    from ingestion.models import Chunk

    return Chunk.objects.count()


def _bulk_session(cursor) -> None:
    """Session settings for the index builds and the postings rebuild: 1,000,000 x 384-d halfvec make a
    ~1.5 GB graph that must fit in memory, and sorts of tens of millions of postings should not spill."""
    cursor.execute("SET maintenance_work_mem = '4GB'")
    cursor.execute("SET max_parallel_maintenance_workers = 2")
    cursor.execute("SET work_mem = '512MB'")
    cursor.execute("SET jit = off")


def filler_top_up(
    dataset: str,
    target: int,
    *,
    batch: int = 5000,
    seed: int = 7,
    log=print,
    timings: dict[str, float] | None = None,
    workers: int = 1,
) -> int:
    """Insert filler passages until the database holds `target` passages in all. Returns how many were added;
    `timings`, when given, receives `insert_s`, `postings_s` (the postings rebuilt, or the statistics folded),
    `index_build_s` (every index rebuilt, VACUUM and ANALYZE) and `hnsw_build_s` (its share of that). With
    `workers` > 1, that many processes insert disjoint shares at once.

    A bulk load (`BULK_FROM` passages or more) runs without the passages' secondary indexes, the space's
    HNSW index, the postings' indexes and the postings trigger: maintaining them row by row costs far more
    than one build at the end (the trigger alone made a COPY of 5,000 passages take ~40 s instead of ~5 s
    under load). The postings are then rebuilt set-based in parallel sessions and every index recreated
    from its own definition (the HNSW by the ingestion service), so the end state is the one ingestion
    keeps.
    """
    from django.db import connection

    from ingestion.models import Collection
    from ingestion.services.spaces import (
        embedding_space_get_or_create_active,
        embedding_space_index_create,
        embedding_space_index_drop,
    )
    from search.fulltext import lexeme_stats_compact

    have = passages_count()
    missing = target - have
    if missing <= 0:
        return 0
    space = embedding_space_get_or_create_active()
    Collection.objects.get_or_create(
        slug=FILLER_SLUG, defaults={"name": "Benchmark filler", "description": "Generated passages."}
    )
    started = time.perf_counter()
    log(f"filler: adding {missing:,} passages ({have:,} present), vectors: hash embedder, word features")
    embedding_space_index_drop(space)
    bulk = missing >= BULK_FROM
    indexes = _secondary_indexes_drop() if bulk else []
    if bulk:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE ingestion_chunk DISABLE TRIGGER {POSTINGS_TRIGGER}")
    try:
        workers = max(1, min(int(workers), missing // batch))
        if workers == 1:
            filler_insert(dataset, have, missing, batch=batch, seed=seed, log=log)
        else:
            share = -(-missing // workers)
            processes = []
            for w in range(workers):
                offset, count = w * share, min(share, missing - w * share)
                command = [sys.executable, "-m", "benchmarks.corpus", "--dataset", dataset]
                command += ["--first", str(have + offset), "--count", str(count), "--batch", str(batch)]
                command += ["--seed", str(seed)]
                processes.append(subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent))
            failed = [p.args for p in processes if p.wait() != 0]
            if failed:
                raise RuntimeError(f"filler workers failed: {failed}")
    finally:
        insert_s = time.perf_counter() - started
        log(f"  inserted in {insert_s:.0f} s")
        with connection.cursor() as cursor:
            _bulk_session(cursor)
        t0 = time.perf_counter()
        if bulk:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE ingestion_chunk ENABLE TRIGGER {POSTINGS_TRIGGER}")
            postings_rebuild_parallel(max(2, workers), log=log)
        else:
            lexeme_stats_compact()
        postings_s = time.perf_counter() - t0
        log(f"  postings and lexeme statistics in {postings_s:.0f} s")
        t0 = time.perf_counter()
        if bulk:
            _secondary_indexes_restore(indexes, log=log)
        _model_indexes_ensure()
        t1 = time.perf_counter()
        embedding_space_index_create(space)
        hnsw_s = time.perf_counter() - t1
        log(f"  HNSW built in {hnsw_s:.0f} s")
        with connection.cursor() as cursor:
            cursor.execute("RESET ALL")
            # VACUUM, not only ANALYZE: the visibility map lets the postings' and vectors' index-only scans
            # skip the heap (freshly loaded pages are not all-visible until vacuumed).
            for table in (*BULK_TABLES, "ingestion_document"):
                cursor.execute(f"VACUUM (ANALYZE) {table}")
        index_build_s = time.perf_counter() - t0
        log(f"  indexes rebuilt, vacuumed and analysed in {index_build_s:.0f} s (HNSW {hnsw_s:.0f} s)")
        if timings is not None:
            timings.update(
                insert_s=round(insert_s, 1),
                postings_s=round(postings_s, 1),
                index_build_s=round(index_build_s, 1),
                hnsw_build_s=round(hnsw_s, 1),
            )
    return passages_count() - have


def _model_indexes_ensure() -> None:
    """Recreate any index the passage models declare that is missing (a load interrupted after dropping
    them leaves none to read back from the catalogue)."""
    from django.db import connection

    from ingestion.models import Chunk

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        present = {name for (name,) in cursor.fetchall()}
    with connection.schema_editor() as editor:
        for index in Chunk._meta.indexes:
            if index.name not in present:
                editor.add_index(Chunk, index)


def _unigram_embedder():
    """The stand-in's hash embedder without its character n-gram features: each word hashes to one bucket
    (its stem, signed, sublinear tf, L2-normalised as before). Twenty times fewer features a word, so the
    filler's vectors stop dominating the load (they are synthetic either way; SciFact's own passages and
    the queries keep the full embedder)."""
    from genapi.local.text import STOPWORDS, HashEmbedder, _h, stem

    class UnigramHashEmbedder(HashEmbedder):
        def _word_features(self, word: str) -> list[tuple[int, float]]:
            if word in STOPWORDS:
                return [(_h("w:" + word), 0.15)]
            return [(_h("w:" + stem(word)), 1.0)]

    return UnigramHashEmbedder()


def filler_batch(rng, words, probabilities, embedder, dims: int, n: int) -> tuple[list[str], object]:
    """`n` passages of 60-140 words drawn by corpus frequency (numpy draws them: `random.choices` per passage
    took 2.7 s a batch of 5,000, this 0.4 s), and their stand-in hash embeddings as float16."""
    import numpy as np

    lengths = rng.integers(60, 141, size=n)
    drawn = rng.choice(len(words), size=int(lengths.sum()), p=probabilities)
    drawn_words = np.asarray(words, dtype=object)[drawn].tolist()
    ends, counts = np.cumsum(lengths).tolist(), lengths.tolist()
    texts = [" ".join(drawn_words[e - k : e]) + "." for e, k in zip(ends, counts, strict=True)]
    vectors = embedder.embed_array(texts, dims)
    return texts, vectors.astype(np.float16)


def _ids_reserve(cursor, table: str, n: int) -> list[int]:
    """`n` ids from `table`'s own sequence, in one round trip (workers loading at once never collide)."""
    cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, n])
    return [int(i) for (i,) in cursor.fetchall()]


def filler_insert(
    dataset: str, first: int, count: int, *, batch: int = 5000, seed: int = 7, log=print
) -> None:
    """Insert `count` filler passages numbered from `first` (titles, hashes and the random stream follow the
    numbers, so disjoint ranges can load in parallel). Documents, passages and vectors go in with binary
    COPY (ids reserved from the tables' sequences first), one transaction per batch."""
    import datetime as dt

    import numpy as np
    from django.db import connection, transaction
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    from ingestion.models import Chunk, Collection, Document
    from ingestion.services.copy_writes import (
        HalfVector,  # pgvector 0.3 and 0.4 (langchain-postgres pins 0.3)
    )
    from ingestion.services.spaces import embedding_space_get_or_create_active

    space = embedding_space_get_or_create_active()
    collection = Collection.objects.get(slug=FILLER_SLUG)
    words, weights = _vocabulary(dataset)
    probabilities = np.asarray(weights, dtype=np.float64) / sum(weights)
    embedder = _unigram_embedder()
    rng = np.random.default_rng(seed + first)
    connection.ensure_connection()
    register_vector(connection.connection)
    document_columns = [f.column for f in Document._meta.concrete_fields]
    # Columns the filler does not set take the model's default (NULL when it has none).
    document_defaults = {f.column: f.get_default() for f in Document._meta.concrete_fields if f.has_default()}
    chunk_columns = [f.column for f in Chunk._meta.concrete_fields if not f.generated]
    started = time.perf_counter()
    target = first + count
    added = 0
    while added < count:
        n = min(batch, count - added)
        texts, vectors = filler_batch(rng, words, probabilities, embedder, space.dimensions, n)
        now = dt.datetime.now(dt.UTC)
        with transaction.atomic(), connection.cursor() as cursor:
            raw = cursor.cursor  # psycopg 3 cursor under Django's wrapper: COPY support
            n_docs = -(-n // PASSAGES_PER_FILLER_DOCUMENT)
            doc_ids = _ids_reserve(raw, Document._meta.db_table, n_docs)
            chunk_ids = _ids_reserve(raw, Chunk._meta.db_table, n)
            documents = []
            for j, d in enumerate(range(0, n, PASSAGES_PER_FILLER_DOCUMENT)):
                part = texts[d : d + PASSAGES_PER_FILLER_DOCUMENT]
                body = "\n\n".join(part)
                number = first + added + d
                documents.append({
                    "id": doc_ids[j], "collection_id": collection.pk, "title": f"Filler {number}",
                    "file": "", "text": "", "source_url": "", "mime_type": "text/plain",
                    "size_bytes": len(body),
                    "content_sha256": hashlib.sha256(f"{seed}:{number}:{body}".encode()).hexdigest(),
                    "metadata": Jsonb({"filler": True}), "status": Document.Status.READY.value,
                    "error": "", "chunks_total": len(part), "chunks_embedded": len(part), "attempts": 0,
                    "processing_started_at": None, "created_by_id": None, "updated_by_id": None,
                    "created_at": now, "updated_at": now,
                })  # fmt: skip
            with raw.copy(f"COPY ingestion_document ({', '.join(document_columns)}) FROM STDIN") as cp:
                for row in documents:
                    cp.write_row([row.get(c, document_defaults.get(c)) for c in document_columns])
            with raw.copy(f"COPY ingestion_chunk ({', '.join(chunk_columns)}) FROM STDIN") as cp:
                for i, text in enumerate(texts):
                    row = {
                        "id": chunk_ids[i], "document_id": doc_ids[i // PASSAGES_PER_FILLER_DOCUMENT],
                        "ordinal": i % PASSAGES_PER_FILLER_DOCUMENT, "text": text,
                        "token_count": len(text) // 4, "heading_path": "", "page": None, "char_start": 0,
                        "char_end": len(text), "content_sha256": hashlib.sha256(text.encode()).hexdigest(),
                    }  # fmt: skip
                    cp.write_row([row[c] for c in chunk_columns])
            # Binary: 384 half floats a row, no text parsing on the server.
            with raw.copy(
                "COPY ingestion_chunkembedding (chunk_id, space_id, embedding) FROM STDIN (FORMAT BINARY)"
            ) as cp:
                cp.set_types(["int8", "int8", "halfvec"])
                for chunk_id, vector in zip(chunk_ids, vectors, strict=True):
                    cp.write_row((chunk_id, space.pk, HalfVector(vector)))
        added += n
        log(f"  {first + added:,}/{target:,} passages ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":  # one share of a parallel filler load (filler_top_up starts these)
    import argparse
    import os

    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    cli = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rag_project.settings")
    import django

    django.setup()
    filler_insert(
        cli.dataset, cli.first, cli.count, batch=cli.batch, seed=cli.seed,
        log=lambda m: print(f"  [worker {cli.first:,}] {m.strip()}", flush=True),
    )  # fmt: skip
