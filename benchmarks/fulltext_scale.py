"""Full-text leg at scale: latency of the full-text designs over generated passages (SciFact's vocabulary
and word frequencies, as benchmarks/corpus.py), queried with SciFact test claims. No vectors: only the
full-text leg is timed, in this process, straight against PostgreSQL.

Designs (BENCHMARKS.md, full-text section):
- `postings`: the shipped leg, search.fulltext.fulltext_candidates (impact-ordered postings, per-lexeme
  top-N, exact BM25 over the pool).
- `gin_pool`: a bounded GIN pool on the rarest lexemes, then BM25 over the pooled tsvectors.
- `or_rank`: the earlier design, any query word through the GIN index, every match ranked by ts_rank
  (unbounded: the baseline).

Passages are added with COPY, the index triggers on (set-up time includes keeping the index); `--bulk`
disables the triggers for the load and rebuilds the postings in one pass afterwards.

    python -m benchmarks.fulltext_scale --data-dir DIR --size 100000
    python -m benchmarks.fulltext_scale --data-dir DIR --size 1000000 --bulk --variants postings,gin_pool
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import BenchDatabase, base_parser, percentile, write_json  # noqa: E402

SLUG = "bench-fulltext"
PER_DOCUMENT = 10
LIMIT = 100
TRIGGERS = ("search_postings_insert", "search_postings_update", "search_postings_delete")


def _execute(sql: str, params: list | None = None) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall() if cursor.description else []


def corpus_grow(dataset: str, target: int, *, bulk: bool, batch: int = 20_000, log=print) -> dict:
    """Add generated passages until the collection holds `target`. Returns set-up figures."""
    from django.db import connection, transaction

    from benchmarks.corpus import _vocabulary
    from ingestion.models import Chunk, Collection, Document

    collection, _ = Collection.objects.get_or_create(slug=SLUG, defaults={"name": "Full-text benchmark"})
    have = Chunk.objects.filter(document__collection=collection).count()
    if have >= target:
        return {"added": 0, "load_s": 0.0, "rebuild_s": 0.0}
    words, weights = _vocabulary(dataset)
    rng = random.Random(11 + have)
    started = time.perf_counter()
    if bulk:
        for trigger in TRIGGERS:
            _execute(f"ALTER TABLE ingestion_chunk DISABLE TRIGGER {trigger}")
    added = 0
    try:
        while have + added < target:
            n = min(batch, target - have - added)
            texts = [" ".join(rng.choices(words, weights, k=rng.randint(60, 140))) + "." for _ in range(n)]
            with transaction.atomic():
                docs = Document.objects.bulk_create(
                    [
                        Document(
                            collection=collection,
                            title=f"Generated {have + added + d}",
                            text="",
                            mime_type="text/plain",
                            content_sha256=hashlib.sha256(f"ft:{have + added + d}".encode()).hexdigest(),
                            status=Document.Status.READY,
                        )
                        for d in range(0, n, PER_DOCUMENT)
                    ],
                    batch_size=5000,
                )
                with connection.cursor() as cursor:
                    with cursor.cursor.copy(
                        "COPY ingestion_chunk (document_id, ordinal, text, token_count, heading_path, "
                        "char_start, char_end, content_sha256) FROM STDIN"
                    ) as cp:
                        for i, text in enumerate(texts):
                            cp.write_row(
                                (docs[i // PER_DOCUMENT].pk, i % PER_DOCUMENT, text, len(text) // 4, "",
                                 0, len(text), hashlib.sha256(text.encode()).hexdigest())
                            )  # fmt: skip
            added += n
            log(f"  {have + added:,}/{target:,} passages ({time.perf_counter() - started:.0f} s)")
    finally:
        if bulk:
            for trigger in TRIGGERS:
                _execute(f"ALTER TABLE ingestion_chunk ENABLE TRIGGER {trigger}")
    load_s = time.perf_counter() - started
    rebuild_s = 0.0
    if bulk:
        t0 = time.perf_counter()
        _execute("DROP INDEX IF EXISTS search_posting_impact")
        _execute("ALTER TABLE search_posting DROP CONSTRAINT IF EXISTS search_posting_pkey")
        _execute("SET maintenance_work_mem = '1GB'")
        _execute("SELECT search_postings_rebuild()")
        _execute(
            "ALTER TABLE search_posting ADD CONSTRAINT search_posting_pkey PRIMARY KEY (chunk_id, lexeme) "
            "INCLUDE (tf, dl)"
        )
        _execute(
            "CREATE INDEX search_posting_impact ON search_posting (lexeme, impact DESC, chunk_id) "
            "INCLUDE (document_id, tf, dl)"
        )
        _execute("RESET maintenance_work_mem")
        rebuild_s = time.perf_counter() - t0
        log(f"  postings rebuilt in {rebuild_s:.0f} s")
    from search.fulltext import lexeme_stats_compact

    lexeme_stats_compact()
    t0 = time.perf_counter()
    _execute("VACUUM ANALYZE search_posting")
    _execute("ANALYZE ingestion_chunk")
    _execute("ANALYZE ingestion_document")
    log(f"  vacuum/analyze {time.perf_counter() - t0:.0f} s")
    return {"added": added, "load_s": round(load_s, 1), "rebuild_s": round(rebuild_s, 1)}


def _blocks_touched() -> int:
    """Shared buffers this database hit or read so far: a cost that CPU contention does not blur (this
    machine's latencies swing with the other processes on it). Flushed first: counters are cumulative."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT blks_hit + blks_read FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, required=True, help="passages in the benchmark collection")
    parser.add_argument("--bulk", action="store_true", help="load with the index triggers off, then rebuild")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--variants", default="postings,gin_pool,or_rank")
    args = parser.parse_args(argv)
    db = BenchDatabase(args.database_url, args.data_dir)
    db.setup()
    try:
        from benchmarks.fulltext_variants import OR_QUERY, gin_pool_candidates, ranked_sql
        from ingestion.models import Collection
        from search.evaluation import beir_load
        from search.fulltext import fulltext_candidates
        from search.types import SearchFilters

        setup = corpus_grow(args.dataset, args.size, bulk=args.bulk)
        collection = Collection.objects.get(slug=SLUG)
        [(passages, postings_mb, index_mb)] = _execute(
            "SELECT (SELECT count(*) FROM ingestion_chunk c JOIN ingestion_document d ON d.id = c.document_id"
            " WHERE d.collection_id = %s), pg_table_size('search_posting') / 1048576,"
            " pg_indexes_size('search_posting') / 1048576",
            [collection.pk],
        )
        queries = list(beir_load(Path(args.dataset), "test").queries.values())[: args.queries]
        variants = {
            "postings": lambda q: fulltext_candidates(q, [collection.pk], SearchFilters(), LIMIT),
            "gin_pool": lambda q: gin_pool_candidates(q, [collection.pk], LIMIT),
            "or_rank": lambda q: ranked_sql(q, collection.pk, OR_QUERY, "ts_rank"),
        }
        figures: dict = {"passages": passages, "postings_mb": postings_mb, "index_mb": index_mb, **setup}
        print(f"{passages:,} passages; postings {postings_mb:,} MB + indexes {index_mb:,} MB; set-up {setup}")
        for name in args.variants.split(","):
            fn = variants[name]
            for q in queries[:5]:  # warm the caches
                fn(q)
            took, blocks = [], []
            idle = _blocks_touched()
            idle = _blocks_touched() - idle  # what the measuring itself costs
            for q in queries:
                before = _blocks_touched()
                t0 = time.perf_counter()
                fn(q)
                took.append((time.perf_counter() - t0) * 1000)
                blocks.append(_blocks_touched() - before - idle)
            figures[name] = {
                "p50_ms": round(percentile(took, 50), 1),
                "p95_ms": round(percentile(took, 95), 1),
                "mean_ms": round(sum(took) / len(took), 1),
                "blocks_p50": int(percentile(blocks, 50)),
                "blocks_p95": int(percentile(blocks, 95)),
            }
            print(f"  {name:10} {json.dumps(figures[name])}")
        write_json(args.json, figures)
    finally:
        db.teardown()


if __name__ == "__main__":
    main()
