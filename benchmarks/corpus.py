"""Benchmark corpora: SciFact through the real ingestion code, topped up with generated filler passages
inserted directly with bulk SQL (COPY), their vectors from the stand-in's hash embedder.

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


GIN_REBUILD_FROM = 20_000  # filler loads at least this large drop and rebuild the passages' GIN indexes


def _gin_indexes_drop() -> list[str]:
    """Drop the GIN indexes of ingestion_chunk; return their CREATE INDEX statements."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'ingestion_chunk' AND indexdef ILIKE '%% USING gin %%'"
        )
        rows = cursor.fetchall()
        for name, _ in rows:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
    return [definition for _, definition in rows]


def passages_count() -> int:
    from ingestion.models import Chunk

    return Chunk.objects.count()


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
    `timings`, when given, receives `insert_s`, `index_build_s` (every index rebuilt, and ANALYZE) and
    `hnsw_build_s`. With `workers` > 1, that many processes insert disjoint shares at once.

    The active space's HNSW index is dropped for the load and rebuilt afterwards by the ingestion service
    (one build is far faster than maintaining the graph row by row); the end state is the same index.
    """
    from django.db import connection

    from ingestion.models import Collection
    from ingestion.services.spaces import (
        embedding_space_get_or_create_active,
        embedding_space_index_create,
        embedding_space_index_drop,
    )

    have = passages_count()
    missing = target - have
    if missing <= 0:
        return 0
    space = embedding_space_get_or_create_active()
    Collection.objects.get_or_create(
        slug=FILLER_SLUG, defaults={"name": "Benchmark filler", "description": "Generated passages."}
    )
    started = time.perf_counter()
    log(f"filler: adding {missing:,} passages ({have:,} present), vectors from the hash embedder")
    embedding_space_index_drop(space)
    # Likewise the passages' GIN indexes (full text): maintaining them row by row costs far more than one
    # build at the end. Their definitions are read back from the catalogue and recreated as they were.
    gin_indexes = _gin_indexes_drop() if missing >= GIN_REBUILD_FROM else []
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
        with connection.cursor() as cursor:
            # 1,000,000 x 384-d halfvec make a ~1.5 GB graph: it must fit in memory, or the build crawls.
            cursor.execute("SET maintenance_work_mem = '4GB'")
            cursor.execute("SET max_parallel_maintenance_workers = 2")
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            for definition in gin_indexes:
                cursor.execute(definition)
        _model_indexes_ensure()
        t1 = time.perf_counter()
        embedding_space_index_create(space)
        hnsw_s = time.perf_counter() - t1
        with connection.cursor() as cursor:
            cursor.execute("RESET maintenance_work_mem")
            cursor.execute("RESET max_parallel_maintenance_workers")
            cursor.execute("ANALYZE ingestion_chunkembedding")
            cursor.execute("ANALYZE ingestion_chunk")
            cursor.execute("ANALYZE ingestion_document")
        index_build_s = time.perf_counter() - t0
        log(f"  indexes rebuilt and analysed in {index_build_s:.0f} s (HNSW {hnsw_s:.0f} s)")
        if timings is not None:
            timings.update(
                insert_s=round(insert_s, 1),
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


def filler_insert(
    dataset: str, first: int, count: int, *, batch: int = 5000, seed: int = 7, log=print
) -> None:
    """Insert `count` filler passages numbered from `first` (titles, hashes and the random stream follow the
    numbers, so disjoint ranges can load in parallel)."""
    from django.db import connection, transaction

    from genapi.local.text import HashEmbedder
    from ingestion.models import Chunk, Collection, Document
    from ingestion.services.spaces import embedding_space_get_or_create_active
    from search.selectors import vector_literal

    space = embedding_space_get_or_create_active()
    collection = Collection.objects.get(slug=FILLER_SLUG)
    words, weights = _vocabulary(dataset)
    # Cumulative weights once: `choices(weights=...)` would re-accumulate 30,000 weights per passage.
    cum_weights = list(itertools.accumulate(weights))
    rng = random.Random(seed + first)
    embedder = HashEmbedder()
    started = time.perf_counter()
    have, missing, target = first, count, first + count
    added = 0
    while added < missing:
        n = min(batch, missing - added)
        texts = [
            " ".join(rng.choices(words, cum_weights=cum_weights, k=rng.randint(60, 140))) + "."
            for _ in range(n)
        ]
        vectors = embedder.embed_array(texts, space.dimensions)
        with transaction.atomic():
            docs = []
            for d in range(0, n, PASSAGES_PER_FILLER_DOCUMENT):
                body = "\n\n".join(texts[d : d + PASSAGES_PER_FILLER_DOCUMENT])
                docs.append(
                    Document(
                        collection=collection,
                        title=f"Filler {have + added + d}",
                        text="",
                        mime_type="text/plain",
                        size_bytes=len(body),
                        content_sha256=hashlib.sha256(
                            f"{seed}:{have + added + d}:{body}".encode()
                        ).hexdigest(),
                        metadata={"filler": True},
                        status=Document.Status.READY,
                        chunks_total=min(PASSAGES_PER_FILLER_DOCUMENT, n - d),
                        chunks_embedded=min(PASSAGES_PER_FILLER_DOCUMENT, n - d),
                    )
                )
            Document.objects.bulk_create(docs)
            chunks = []
            for i, text in enumerate(texts):
                doc = docs[i // PASSAGES_PER_FILLER_DOCUMENT]
                chunks.append(
                    Chunk(
                        document=doc,
                        ordinal=i % PASSAGES_PER_FILLER_DOCUMENT,
                        text=text,
                        token_count=len(text) // 4,
                        char_start=0,
                        char_end=len(text),
                        content_sha256=hashlib.sha256(text.encode()).hexdigest(),
                    )
                )
            Chunk.objects.bulk_create(chunks, batch_size=2000)
            with connection.cursor() as cursor:
                raw = cursor.cursor  # psycopg 3 cursor under Django's wrapper: COPY support
                with raw.copy(
                    "COPY ingestion_chunkembedding (chunk_id, space_id, embedding) FROM STDIN"
                ) as cp:
                    for chunk, vector in zip(chunks, vectors, strict=True):
                        cp.write_row((chunk.pk, space.pk, vector_literal(vector)))
        added += n
        log(f"  {have + added:,}/{target:,} passages ({time.perf_counter() - started:.0f} s)")


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
