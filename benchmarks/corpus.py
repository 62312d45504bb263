"""Benchmark corpora: SciFact through the real ingestion code, topped up with generated filler passages
inserted directly with bulk SQL (COPY), their vectors from the stand-in's hash embedder.

Filler passages are drawn from SciFact's own vocabulary (word frequencies as in the corpus), so full-text
and vector searches meet realistic posting lists and neighbours rather than empty noise.
"""

from __future__ import annotations

import hashlib
import json
import random
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


def passages_count() -> int:
    from ingestion.models import Chunk

    return Chunk.objects.count()


def filler_top_up(dataset: str, target: int, *, batch: int = 5000, seed: int = 7, log=print) -> int:
    """Insert filler passages until the database holds `target` passages in all. Returns how many were added.

    The active space's HNSW index is dropped for the load and rebuilt afterwards by the ingestion service
    (one build is far faster than maintaining the graph row by row); the end state is the same index.
    """
    from django.db import connection, transaction

    from genapi.local.text import HashEmbedder
    from ingestion.models import Chunk, Collection, Document
    from ingestion.services.spaces import (
        embedding_space_get_or_create_active,
        embedding_space_index_create,
        embedding_space_index_drop,
    )
    from search.selectors import vector_literal

    have = passages_count()
    missing = target - have
    if missing <= 0:
        return 0
    space = embedding_space_get_or_create_active()
    collection, _ = Collection.objects.get_or_create(
        slug=FILLER_SLUG, defaults={"name": "Benchmark filler", "description": "Generated passages."}
    )
    words, weights = _vocabulary(dataset)
    rng = random.Random(seed + have)
    embedder = HashEmbedder()
    started = time.perf_counter()
    log(f"filler: adding {missing:,} passages ({have:,} present), vectors from the hash embedder")
    embedding_space_index_drop(space)
    added = 0
    try:
        while added < missing:
            n = min(batch, missing - added)
            texts = [" ".join(rng.choices(words, weights, k=rng.randint(60, 140))) + "." for _ in range(n)]
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
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '1GB'")
        t0 = time.perf_counter()
        embedding_space_index_create(space)
        with connection.cursor() as cursor:
            cursor.execute("RESET maintenance_work_mem")
            cursor.execute("ANALYZE ingestion_chunkembedding")
            cursor.execute("ANALYZE ingestion_chunk")
            cursor.execute("ANALYZE ingestion_document")
        log(f"  HNSW index rebuilt in {time.perf_counter() - t0:.0f} s")
    return added
