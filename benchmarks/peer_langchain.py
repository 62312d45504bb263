"""The peer figure: LangChain's `PGVector.add_documents` (langchain-postgres) on the same PostgreSQL.

What people script when they do not run a service: RecursiveCharacterTextSplitter (1,600 characters, 240
overlap), no vector index, one process. It writes into its own database on the same server, so Citable's
tables are untouched.

Two embedders (`peer_run(..., embedder=...)`):
- `fake`: LangChain's zero-cost `DeterministicFakeEmbedding` (384 dimensions), the issue's baseline;
- `standin`: the same embeddings Citable gets, from a stand-in of its own started on this machine, over HTTP
  (`StandinEmbeddings`: the model, base64 encoding and 256 inputs per request that Citable's worker uses),
  so the two sides pay the same provider CPU on the same cores.
"""

from __future__ import annotations

import os
import time
from typing import Any

PEER_DATABASE = f"langchain_bench_{os.getpid()}"  # per run: the server may be shared
CHUNK_SIZE = 1600
CHUNK_OVERLAP = 240
DIMENSIONS = 384
EMBED_BATCH = 256  # inputs per request, as Citable's worker (ingestion.services.embedding.EMBED_BATCH_SIZE)
EMBEDDERS = ("fake", "standin")


def standin_embeddings_class():
    """A LangChain `Embeddings` over an OpenAI-compatible `/v1/embeddings` (defined on first use: LangChain
    is an optional dependency)."""
    import base64

    import httpx
    import numpy as np
    from langchain_core.embeddings import Embeddings

    class StandinEmbeddings(Embeddings):
        def __init__(self, base_url: str, model: str, dimensions: int = DIMENSIONS):
            self.model = model
            self.dimensions = dimensions
            self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=120)
            self.requests = 0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            vectors: list[list[float]] = []
            for start in range(0, len(texts), EMBED_BATCH):
                body = {
                    "model": self.model,
                    "input": texts[start : start + EMBED_BATCH],
                    "encoding_format": "base64",
                }
                response = self.client.post("/embeddings", json=body)
                response.raise_for_status()
                self.requests += 1
                for item in sorted(response.json()["data"], key=lambda d: d["index"]):
                    raw = item["embedding"]
                    if isinstance(raw, str):
                        raw = np.frombuffer(base64.b64decode(raw), dtype=np.float32).tolist()
                    vectors.append(raw)
            return vectors

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    return StandinEmbeddings


def peer_database_create(dbname: str = PEER_DATABASE) -> str:
    """(Re)create an empty database for the peer on Django's server; returns its psycopg URL."""
    from django.db import connection

    from benchmarks.common import psycopg_url

    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{dbname}"')
    return psycopg_url(dbname)


def peer_database_drop(dbname: str = PEER_DATABASE) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def langchain_add_documents(
    corpus: list[tuple[str, str, str]], url: str, embedder=None, label: str = "fake"
) -> dict[str, Any]:
    """Split and add `corpus` ([(id, title, text)]) with PGVector.add_documents; figures of that run.
    `embedder`: a LangChain Embeddings (default: the zero-cost fake)."""
    try:
        from langchain_core.documents import Document as LCDocument
        from langchain_core.embeddings import DeterministicFakeEmbedding
        from langchain_postgres import PGVector
        from langchain_text_splitters import RecursiveCharacterTextSplitter
    except ImportError as exc:
        return {"error": f"LangChain peer not installed ({exc}); pip install -e '.[bench]'"}
    from importlib.metadata import version

    if embedder is None:
        embedder = DeterministicFakeEmbedding(size=DIMENSIONS)
    # Connecting and creating the extension and tables is set-up, not ingestion: outside the timing.
    store = PGVector(
        embeddings=embedder,
        collection_name="beir",
        connection=url,
        use_jsonb=True,
        pre_delete_collection=True,
    )
    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
    started = time.perf_counter()
    documents = [
        LCDocument(page_content=text, metadata={"beir_id": doc_id, "title": title})
        for doc_id, title, text in corpus
    ]
    chunks = splitter.split_documents(documents)
    store.add_documents(chunks)
    elapsed = time.perf_counter() - started
    store._engine.dispose()
    return {
        "library": f"langchain-postgres {version('langchain-postgres')}, "
        f"langchain-core {version('langchain-core')}",
        "embedder": label,
        "documents": len(corpus),
        "chunks": len(chunks),
        "seconds": round(elapsed, 2),
        "documents_per_s": round(len(corpus) / elapsed, 1),
        "chunks_per_s": round(len(chunks) / elapsed, 1),
    }


def peer_run(corpus: list[tuple[str, str, str]], embedder: str = "fake") -> dict[str, Any]:
    """The peer with the `fake` embedder, or with `standin` embeddings (a stand-in started for the run and
    stopped after it; starting it is outside the timing, as Citable's is)."""
    if embedder not in EMBEDDERS:
        raise ValueError(f"embedder must be one of {EMBEDDERS}")
    url = peer_database_create()
    stack = None
    try:
        if embedder == "fake":
            return langchain_add_documents(corpus, url)
        from benchmarks.common import BENCH_EMBEDDING_MODEL, Stack

        try:
            cls = standin_embeddings_class()
        except ImportError as exc:
            return {"error": f"LangChain peer not installed ({exc}); pip install -e '.[bench]'"}
        stack = Stack(web=False, workers=0)
        standin_url = stack.start_standin()
        model = os.environ.get("BENCH_EMBEDDING_MODEL", BENCH_EMBEDDING_MODEL)
        embeddings = cls(f"{standin_url}/v1", model)
        figures = langchain_add_documents(corpus, url, embedder=embeddings, label="standin")
        figures["embedding_requests"] = embeddings.requests
        return figures
    finally:
        if stack is not None:
            stack.stop()
        peer_database_drop()
