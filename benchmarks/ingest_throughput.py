"""Ingestion throughput: the SciFact corpus through `POST /api/documents/bulk` until every document is
`ready`.

Starts its own stand-in (no added latency, so the figure measures Citable), gunicorn and Celery worker(s) as
subprocesses on free ports, against a fresh embedded PostgreSQL (or --database-url). Prints documents/s,
chunks/s and the peak resident memory of the web and worker process trees; then, on the same server and in the
same run, the peer: LangChain's PGVector.add_documents (see benchmarks/peer_langchain.py), twice: with
LangChain's zero-cost fake embedder (issue 15's baseline: its 1.5x target is judged against this one) and with
the same stand-in embeddings Citable gets, over HTTP (`--peer-embedder fake` skips the second).

    python -m benchmarks.ingest_throughput                 # full SciFact (5,183 documents)
    python -m benchmarks.ingest_throughput --sample 20     # smoke run
    python -m benchmarks.ingest_throughput --generated 100000 --skip-peer   # a 100,000-document import

`--generated N` imports N documents generated from the dataset's vocabulary (benchmarks/corpus.py) instead
of the dataset itself, and reports the worker's memory early and late in the run (flat, or growing).
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python benchmarks/ingest_throughput.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    BenchDatabase,
    RssSampler,
    Stack,
    base_parser,
    bench_principal,
    machine_info,
    print_machine,
    write_json,
)

BULK_MAX = 1000  # the bulk API's per-call maximum
# With no provider limits to respect, the client's own limiter must not be what is measured: lift it.
UNLIMITED_CLIENT = {"GENAPI_RPM": "1000000", "GENAPI_TPM": "1000000000", "GENAPI_CONCURRENCY": "64"}


def corpus_read(dataset: str, sample: int | None) -> list[tuple[str, str, str]]:
    """[(BEIR id, title, text)] in corpus order; `text` is what Citable stores (title, blank line, text)."""
    from search.evaluation import beir_document_text

    rows = []
    with open(Path(dataset) / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            doc = json.loads(line)
            rows.append((str(doc["_id"]), doc.get("title") or "", beir_document_text(doc)))
            if sample and len(rows) >= sample:
                break
    return rows


def bulk_post(client, collection_slug: str, corpus) -> list[int]:
    """POST the corpus (any iterable) in 1,000-document calls; returns the HTTP statuses."""
    statuses = []
    documents = iter(corpus)
    while batch := list(itertools.islice(documents, BULK_MAX)):
        payload = {
            "collection": collection_slug,
            "documents": [
                {"title": (title or doc_id)[:500], "text": text, "metadata": {"beir_id": doc_id}}
                for doc_id, title, text in batch
            ],
        }
        response = client.post("/api/documents/bulk", json=payload)
        if response.status_code >= 400:
            raise RuntimeError(f"bulk API answered {response.status_code}: {response.text[:500]}")
        statuses.append(response.status_code)
    return statuses


def wait_terminal(collection_id: int, expected: int, timeout: float, progress=None) -> dict[str, int]:
    """Poll the database until `expected` documents of the collection are ready or failed."""
    from django.db import connection
    from django.db.models import Count

    from ingestion.models import Document

    deadline = time.monotonic() + timeout
    last = 0.0
    while True:
        rows = Document.objects.filter(collection_id=collection_id).values("status").annotate(n=Count("id"))
        counts = {r["status"]: r["n"] for r in rows}
        if counts.get("ready", 0) + counts.get("failed", 0) >= expected:
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"documents not done after {timeout:.0f}s: {counts}")
        if progress and time.monotonic() - last > 15:
            progress(counts)
            last = time.monotonic()
        connection.close()  # fresh snapshot, and no idle connection pinned between polls
        time.sleep(0.25)


def embedding_tokens(collection_id: int) -> int:
    """Tokens the embeddings calls carried, as the provider's estimate counts them (len // 4 per input)."""
    from genapi.limiter import estimate_tokens
    from ingestion.models import Chunk

    total = 0
    rows = Chunk.objects.filter(document__collection_id=collection_id).values_list(
        "document__title", "heading_path", "text"
    )
    for title, heading, text in rows.iterator(chunk_size=5000):
        head = "\n".join(part for part in ((title or "").strip(), heading) if part)
        total += estimate_tokens(f"{head}\n\n{text}" if head else text)
    return total


def citable_run(
    args,
    corpus,
    standin_env: dict[str, str] | None = None,
    standin_knobs: dict[str, Any] | None = None,
    client_env: dict[str, str] | None = None,
    count: int | None = None,
) -> tuple[dict[str, Any], Stack]:
    """Ingest `corpus` ([(id, title, text)], or any iterable of `count` of them) through the API into a new
    collection; returns figures and the (stopped) stack."""
    import os

    import httpx

    os.environ.update(client_env or {})
    expected = count if count is not None else len(corpus)

    from ingestion.models import Chunk, Document
    from ingestion.services.collections import collection_create
    from ingestion.services.spaces import embedding_space_get_or_create_active

    stack = Stack(
        web_workers=args.web_workers,
        workers=args.workers,
        worker_concurrency=args.worker_concurrency,
        standin_env=standin_env,
    )
    try:
        stack.start_standin()
        if standin_knobs:
            stack.standin_knobs(**standin_knobs)
        # The active embedding space (and its HNSW index) exists before the clock starts, as in production.
        embedding_space_get_or_create_active()
        stack.start_web()
        stack.start_workers()
        _, key = bench_principal(["ingest", "search", "ask", "admin"])
        collection = collection_create(name=f"bench {time.time():.0f}", slug=f"bench-{time.time_ns()}")
        stack.standin_stats(reset=True)
        roots = {"web": stack.services["web"].process.pid}
        roots.update(
            {name: svc.process.pid for name, svc in stack.services.items() if name.startswith("worker")}
        )
        headers = {"Authorization": f"Bearer {key}"}
        with (
            httpx.Client(base_url=stack.web_url, headers=headers, timeout=300) as client,
            RssSampler(roots) as rss,
        ):
            started = time.perf_counter()
            statuses = bulk_post(client, collection.slug, corpus)
            accepted_s = time.perf_counter() - started
            counts = wait_terminal(
                collection.pk,
                expected,
                args.timeout,
                progress=lambda c: print(
                    f"  {time.perf_counter() - started:6.0f}s {c} "
                    f"RSS MiB { ({k: round(v) for k, v in rss.current_mib.items()}) }",
                    flush=True,
                ),
            )
            elapsed = time.perf_counter() - started
        stats = stack.standin_stats()
        chunks = Chunk.objects.filter(document__collection=collection).count()
        tokens = embedding_tokens(collection.pk)
        failed = Document.objects.filter(collection=collection, status=Document.Status.FAILED)
        errors = sorted({e[:200] for e in failed.values_list("error", flat=True)})[:5]
        worker_peak = sum(v for k, v in rss.peak_mib.items() if k.startswith("worker"))
        worker_names = [k for k in rss.peak_mib if k.startswith("worker")]
        figures = {
            "documents": expected,
            "ready": counts.get("ready", 0),
            "failed": counts.get("failed", 0),
            "failed_examples": errors,
            "chunks": chunks,
            "seconds": round(elapsed, 2),
            "accepted_seconds": round(accepted_s, 2),
            "bulk_statuses": sorted(set(statuses)),
            "documents_per_s": round(expected / elapsed, 1),
            "chunks_per_s": round(chunks / elapsed, 1),
            "embedding_tokens": tokens,
            "client_limits": {k: os.environ.get(k, "default") for k in UNLIMITED_CLIENT},
            "peak_rss_web_mib": round(rss.peak_mib["web"], 1),
            "peak_rss_worker_mib": round(worker_peak, 1),
            # Flat memory: the worker's peak in the run's first fifth against its last fifth.
            "peak_rss_worker_first_fifth_mib": round(rss.peak_between(worker_names, 0.0, 0.2), 1),
            "peak_rss_worker_last_fifth_mib": round(rss.peak_between(worker_names, 0.8, 1.0), 1),
            "web": f"gunicorn {args.web_workers} workers x 4 threads",
            "worker": f"{args.workers} celery worker(s), prefork concurrency {args.worker_concurrency}",
            "standin": stats,
        }
        return figures, stack
    finally:
        stack.stop()


def add_stack_arguments(parser) -> None:
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for ingestion")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.split("\n\n")[0])
    add_stack_arguments(parser)
    parser.add_argument("--skip-peer", action="store_true", help="do not run the LangChain peer")
    parser.add_argument(
        "--generated",
        type=int,
        default=None,
        help="import N documents generated from the dataset's vocabulary instead of the dataset",
    )
    parser.add_argument(
        "--peer-embedder",
        choices=("both", "fake"),
        default="both",
        help="the peer with LangChain's zero-cost fake embedder only, or also with the stand-in's "
        "embeddings over HTTP (Citable's own)",
    )
    args = parser.parse_args(argv)
    info = machine_info()
    db = BenchDatabase(args.database_url, args.data_dir)
    db.setup()
    try:
        print_machine(info)
        if args.generated:
            from benchmarks.corpus import generated_documents

            count = args.generated
            corpus = generated_documents(args.dataset, count)
            print(f"ingest_throughput: {count} documents generated from {args.dataset}'s vocabulary")
        else:
            corpus = corpus_read(args.dataset, args.sample)
            count = len(corpus)
            print(f"ingest_throughput: {count} documents from {args.dataset}")
        citable, _ = citable_run(args, corpus, client_env=UNLIMITED_CLIENT, count=count)
        peer: dict[str, Any] = {"skipped": True}
        peer_same: dict[str, Any] = {"skipped": True}
        if not args.skip_peer and not args.generated:
            from benchmarks.peer_langchain import peer_run

            peer = peer_run(corpus, embedder="fake")
            if args.peer_embedder == "both":
                peer_same = peer_run(corpus, embedder="standin")
    finally:
        db.teardown()

    print()
    heads = ("Citable (API+worker+HTTP)", "LangChain, fake embedder", "LangChain, stand-in")
    print(f"{'':30}{heads[0]:>27}{heads[1]:>26}{heads[2]:>22}")
    rows = [
        ("documents", citable["documents"], peer.get("documents", "-"), peer_same.get("documents", "-")),
        ("passages (chunks)", citable["chunks"], peer.get("chunks", "-"), peer_same.get("chunks", "-")),
        ("wall time, s", citable["seconds"], peer.get("seconds", "-"), peer_same.get("seconds", "-")),
        (
            "documents/s",
            citable["documents_per_s"],
            peer.get("documents_per_s", "-"),
            peer_same.get("documents_per_s", "-"),
        ),
        (
            "chunks/s",
            citable["chunks_per_s"],
            peer.get("chunks_per_s", "-"),
            peer_same.get("chunks_per_s", "-"),
        ),
        ("failed documents", citable["failed"], "-", "-"),
        ("peak RSS web, MiB", citable["peak_rss_web_mib"], "-", "-"),
        ("peak RSS worker(s), MiB", citable["peak_rss_worker_mib"], "-", "-"),
        (
            "  worker, first / last fifth",
            f"{citable['peak_rss_worker_first_fifth_mib']} / {citable['peak_rss_worker_last_fifth_mib']}",
            "-",
            "-",
        ),
    ]
    for label, ours, fake, same in rows:
        print(f"{label:30}{ours!s:>27}{fake!s:>26}{same!s:>22}")
    for name, figures in (("peer (fake embedder)", peer), ("peer (stand-in embeddings)", peer_same)):
        if figures.get("error"):
            print(f"{name}: {figures['error']}")
    print(
        f"stand-in requests: {citable['standin'].get('requests')}, "
        f"statuses {citable['standin'].get('statuses')}"
    )
    if citable["failed_examples"]:
        print(f"failures: {citable['failed_examples']}")
    if peer.get("documents_per_s"):
        # The 1.5x target is judged against this peer (its baseline had the fake embedder).
        print(
            f"Citable / peer (fake embedder) documents/s: "
            f"{citable['documents_per_s'] / peer['documents_per_s']:.2f}x  (issue 15's target: >= 1.5x)"
        )
    if peer_same.get("documents_per_s"):
        print(
            f"Citable / peer (same stand-in embeddings) documents/s: "
            f"{citable['documents_per_s'] / peer_same['documents_per_s']:.2f}x"
        )
    result = {
        "benchmark": "ingest_throughput",
        "machine": info,
        "citable": citable,
        "peer": peer,
        "peer_same_embeddings": peer_same,
    }
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
