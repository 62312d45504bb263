"""The peer figure: LangChain's `PGVector.add_documents` (langchain-postgres) on the same PostgreSQL.

What people script when they do not run a service: RecursiveCharacterTextSplitter (1,600 characters, 240
overlap), a zero-cost fake embedder of 384 dimensions, no vector index, one process. It writes into its own
database on the same server, so Citable's tables are untouched.
"""

from __future__ import annotations

import os
import time
from typing import Any

PEER_DATABASE = f"langchain_bench_{os.getpid()}"  # per run: the server may be shared
CHUNK_SIZE = 1600
CHUNK_OVERLAP = 240
DIMENSIONS = 384


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


def langchain_add_documents(corpus: list[tuple[str, str, str]], url: str) -> dict[str, Any]:
    """Split and add `corpus` ([(id, title, text)]) with PGVector.add_documents; figures of that run."""
    try:
        from langchain_core.documents import Document as LCDocument
        from langchain_core.embeddings import DeterministicFakeEmbedding
        from langchain_postgres import PGVector
        from langchain_text_splitters import RecursiveCharacterTextSplitter
    except ImportError as exc:
        return {"error": f"LangChain peer not installed ({exc}); pip install -e '.[bench]'"}
    from importlib.metadata import version

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
        "documents": len(corpus),
        "chunks": len(chunks),
        "seconds": round(elapsed, 2),
        "documents_per_s": round(len(corpus) / elapsed, 1),
        "chunks_per_s": round(len(chunks) / elapsed, 1),
    }


def peer_run(corpus: list[tuple[str, str, str]]) -> dict[str, Any]:
    url = peer_database_create()
    try:
        return langchain_add_documents(corpus, url)
    finally:
        peer_database_drop()
