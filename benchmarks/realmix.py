"""Synthetic passage vectors derived from real MiniLM vectors, for HNSW recall at sizes the machine cannot
embed for real (1,000,000 passages: days of MiniLM on 2 CPU cores).

The real part: the sentences of the dataset's corpus (titles and abstract sentences; all of them, or a
seeded random sample), embedded by all-MiniLM-L6-v2 (the stand-in's `minilm` engine, loaded in this
process), cached as a .npy file.
The synthetic part, per passage (seeded, deterministic):

    v = normalise(w1 * s_a + w2 * s_b + w3 * s_c + SIGMA * n),   (w1, w2, w3) ~ Dirichlet(4, 2, 1)

with s_a a random sentence, s_b another sentence of the same abstract (a passage is several sentences on
one topic), s_c a sentence of another abstract (topic drift), and n a Gaussian draw with the real
sentences' covariance (noise along the directions real vectors vary in, not isotropic). So the vectors
keep the real ones' anisotropy and topical clusters, without being copies of them (no exact ties).

Filler passages have empty text: the full-text leg and its postings are not what this measures.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np

REALMIX_SLUG = "bench-realmix"
PASSAGES_PER_DOCUMENT = 10
SIGMA = 0.5
DIRICHLET = (4.0, 2.0, 1.0)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


def corpus_sentences(dataset: str) -> tuple[list[str], np.ndarray]:
    """Titles and abstract sentences of the corpus, and the abstract each belongs to (an int per sentence)."""
    import json

    sentences: list[str] = []
    owner: list[int] = []
    with open(Path(dataset) / "corpus.jsonl", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            doc = json.loads(line)
            parts = [doc.get("title", "")] + _SENTENCE_END.split(doc.get("text", ""))
            for part in parts:
                part = part.strip()
                if len(part) >= 20:
                    sentences.append(part)
                    owner.append(n)
    return sentences, np.asarray(owner, dtype=np.int64)


def sentence_vectors(
    dataset: str, cache: Path, limit: int | None = None, log=print
) -> tuple[np.ndarray, np.ndarray]:
    """(unit MiniLM vectors of corpus sentences, owning abstract per sentence): the first `limit` (all when
    None) of a seeded random order of the sentences. Saved to `cache` every batch, so an interrupted run
    resumes, and a larger `limit` extends a smaller one (MiniLM on a loaded 2-core machine embeds ~5-25
    short sentences a second)."""
    sentences, owner = corpus_sentences(dataset)
    order = np.random.default_rng(5).permutation(len(sentences))[: limit or len(sentences)]
    sentences, owner = [sentences[i] for i in order], owner[order]
    done = np.load(cache) if cache.exists() else np.zeros((0, 384), dtype=np.float32)
    if len(done) >= len(sentences):
        return done[: len(sentences)], owner
    from genapi.local.engines import load_minilm

    model = load_minilm()
    started, start_n = time.perf_counter(), len(done)
    cache.parent.mkdir(parents=True, exist_ok=True)
    for i in range(len(done), len(sentences), 256):
        batch = model.encode(sentences[i : i + 256], batch_size=64, normalize_embeddings=True)
        done = np.concatenate([done, np.asarray(batch, dtype=np.float32)])
        np.save(cache, done)
        rate = (len(done) - start_n) / (time.perf_counter() - started)
        log(f"  embedded {len(done):,}/{len(sentences):,} sentences ({rate:.0f}/s)")
    return done, owner


def realmix_vectors(sentences: np.ndarray, owner: np.ndarray, first: int, count: int, seed: int = 11):
    """`count` synthetic unit vectors numbered from `first` (each block of 10,000 has its own random stream,
    so any range can be regenerated alone)."""
    centred = sentences - sentences.mean(axis=0)
    cov = centred.T @ centred / len(sentences)
    eigval, eigvec = np.linalg.eigh(cov)
    noise_basis = eigvec * np.sqrt(np.clip(eigval, 0, None))  # n = basis @ g, g ~ N(0, I): covariance cov
    # sentences of each abstract, for s_b
    order = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[order], np.arange(owner.max() + 2))
    block = 10_000
    out = np.empty((count, sentences.shape[1]), dtype=np.float32)
    for b0 in range(first // block * block, first + count, block):
        rng = np.random.default_rng([seed, b0])
        a = rng.integers(0, len(sentences), block)
        own = owner[a]
        lo, hi = starts[own], starts[own + 1]
        b = order[lo + (rng.random(block) * (hi - lo)).astype(np.int64)]
        c = rng.integers(0, len(sentences), block)
        w = rng.dirichlet(DIRICHLET, block).astype(np.float32)
        g = rng.standard_normal((block, sentences.shape[1])).astype(np.float32)
        v = w[:, :1] * sentences[a] + w[:, 1:2] * sentences[b] + w[:, 2:] * sentences[c]
        v += SIGMA * g @ noise_basis.T
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        lo_i, hi_i = max(first, b0), min(first + count, b0 + block)
        out[lo_i - first : hi_i - first] = v[lo_i - b0 : hi_i - b0]
    return out


def realmix_insert(
    vectors: np.ndarray, space_id: int, *, first: int = 0, batch: int = 50_000, log=print
) -> None:
    """Filler documents and passages (empty text) by INSERT ... SELECT, their vectors by binary COPY;
    `first` numbers the passages (a multiple of 10), so later calls add distinct documents."""
    from django.db import connection, transaction
    from pgvector.psycopg.halfvec import register_halfvec_info
    from psycopg.types import TypeInfo

    from ingestion.models import Collection
    from ingestion.services.copy_writes import (
        HalfVector,  # pgvector 0.3 and 0.4 (langchain-postgres pins 0.3)
    )

    collection, _ = Collection.objects.get_or_create(
        slug=REALMIX_SLUG, defaults={"name": "Benchmark realmix", "description": "Synthetic vectors."}
    )
    started = time.perf_counter()
    for b0 in range(0, len(vectors), batch):
        part = vectors[b0 : b0 + batch]
        docs = -(-len(part) // PASSAGES_PER_DOCUMENT)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO ingestion_document (collection_id, title, file, text, source_url,
                    mime_type, size_bytes, content_sha256, metadata, status, error, chunks_total,
                    chunks_embedded, embedding_tokens, attempts, created_at, updated_at)
                SELECT %s, 'Realmix ' || g, '', '', '', 'text/plain', 0, md5('realmix:' || g),
                    '{"filler": true}', 'ready', '', %s, %s, 0, 0, now(), now()
                FROM generate_series(%s, %s) g
                RETURNING id
                """,
                [
                    collection.pk,
                    PASSAGES_PER_DOCUMENT,
                    PASSAGES_PER_DOCUMENT,
                    (first + b0) // PASSAGES_PER_DOCUMENT,
                    (first + b0) // PASSAGES_PER_DOCUMENT + docs - 1,
                ],
            )
            doc_ids = sorted(r[0] for r in cursor.fetchall())
            cursor.execute(
                """
                INSERT INTO ingestion_chunk (document_id, ordinal, text, token_count, heading_path,
                    char_start, char_end, content_sha256)
                SELECT d, o, '', 0, '', 0, 0, md5(d || ':' || o)
                FROM unnest(%s::bigint[]) d CROSS JOIN generate_series(0, %s) o
                ORDER BY d, o
                LIMIT %s
                RETURNING id
                """,
                [doc_ids, PASSAGES_PER_DOCUMENT - 1, len(part)],
            )
            chunk_ids = sorted(r[0] for r in cursor.fetchall())
            raw = cursor.cursor  # psycopg 3 cursor under Django's wrapper: COPY support
            halfvec = TypeInfo.fetch(raw.connection, "halfvec")
            register_halfvec_info(raw, halfvec)  # binary dumper for this cursor
            with raw.copy(
                "COPY ingestion_chunkembedding (chunk_id, space_id, embedding) FROM STDIN (FORMAT BINARY)"
            ) as cp:
                cp.set_types(["int8", "int8", halfvec.oid])
                for chunk_id, vector in zip(chunk_ids, part, strict=True):
                    cp.write_row((chunk_id, space_id, HalfVector(vector)))
        done = b0 + len(part)
        log(f"  {first + done:,} synthetic passages ({time.perf_counter() - started:.0f} s)")


def content_digest(vectors: np.ndarray) -> str:
    return hashlib.sha256(vectors[:1000].tobytes()).hexdigest()[:12]
