"""Retrieval-quality evaluation: BEIR dataset loading, passage-to-document mapping and IR metrics.

The metrics follow the definitions pytrec_eval (trec_eval) and BEIR use, restricted to what SciFact needs:
- nDCG@k: gain = graded relevance (binary here), discount log2(rank + 1), ideal DCG from the qrels' own
  relevances sorted descending and cut at k (trec_eval `ndcg_cut`).
- Recall@k: relevant documents in the top k / all relevant documents of the query (trec_eval `recall`).
- MRR@k: 1 / rank of the first relevant document within the top k, else 0 (BEIR `mrr@k`).
Qrels with relevance <= 0 are not relevant. Every query in the qrels counts in the mean, also one for which
the system returned nothing (trec_eval `-c`); BEIR silently drops such queries, which can only flatter.

Pure Python on purpose: the evaluation must run wherever the service runs, without pytrec_eval's C build.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Qrels = dict[str, dict[str, int]]  # query id -> {document id: relevance}
Run = dict[str, list[str]]  # query id -> ranked document ids, best first


def _relevant(judgements: Mapping[str, int]) -> set[str]:
    return {doc_id for doc_id, rel in judgements.items() if rel > 0}


def dcg(gains: Iterable[float]) -> float:
    return sum(g / math.log2(rank + 1) for rank, g in enumerate(gains, start=1))


def ndcg_at_k(ranked: Sequence[str], judgements: Mapping[str, int], k: int = 10) -> float:
    ideal = dcg(sorted((rel for rel in judgements.values() if rel > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    got = dcg(max(judgements.get(doc_id, 0), 0) for doc_id in ranked[:k])
    return got / ideal


def recall_at_k(ranked: Sequence[str], judgements: Mapping[str, int], k: int = 100) -> float:
    relevant = _relevant(judgements)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], judgements: Mapping[str, int], k: int = 10) -> float:
    relevant = _relevant(judgements)
    for rank, doc_id in enumerate(ranked[:k], start=1):
        if doc_id in relevant:
            return 1.0 / rank
    return 0.0


@dataclass
class Scores:
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    queries: int
    per_query: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "ndcg@10": self.ndcg_at_10,
            "recall@100": self.recall_at_100,
            "mrr@10": self.mrr_at_10,
            "queries": self.queries,
        }


def run_evaluate(qrels: Qrels, run: Run) -> Scores:
    """Mean nDCG@10, Recall@100 and MRR@10 over every query in `qrels` (missing runs score 0)."""
    per_query: dict[str, dict[str, float]] = {}
    for query_id, judgements in qrels.items():
        ranked = dedupe(run.get(query_id, []))
        per_query[query_id] = {
            "ndcg@10": ndcg_at_k(ranked, judgements, 10),
            "recall@100": recall_at_k(ranked, judgements, 100),
            "mrr@10": mrr_at_k(ranked, judgements, 10),
        }
    n = len(per_query)

    def mean(name: str) -> float:
        return sum(q[name] for q in per_query.values()) / n if n else 0.0

    return Scores(mean("ndcg@10"), mean("recall@100"), mean("mrr@10"), n, per_query)


def dedupe(ids: Iterable[str]) -> list[str]:
    """Keep the first occurrence of each id (trec_eval would count a duplicate twice)."""
    seen: set[str] = set()
    out: list[str] = []
    for item in ids:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def passages_to_documents(passages: Iterable[tuple[object, float]]) -> list[tuple[object, float]]:
    """Collapse a ranked passage list into a ranked document list.

    Each document keeps its best passage score; documents are ordered by that score, ties in first-seen
    order (Python's sort is stable), which for a list sorted by score is simply the first-seen order.
    """
    best: dict[object, float] = {}
    order: list[object] = []
    for doc_id, score in passages:
        if doc_id not in best:
            best[doc_id] = score
            order.append(doc_id)
        elif score > best[doc_id]:
            best[doc_id] = score
    return sorted(((d, best[d]) for d in order), key=lambda item: -item[1])


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (numpy's default method), 0 for an empty list."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * pct / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# --- BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv ------------------------------------------


@dataclass
class BeirDataset:
    name: str
    corpus: dict[str, dict[str, str]]  # doc id -> {"title", "text"}
    queries: dict[str, str]  # query id -> text, only the split's queries
    qrels: Qrels


def qrels_load(path: Path) -> Qrels:
    qrels: Qrels = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        for row in reader:
            if not row or row[0] == "query-id":
                continue
            query_id, doc_id, score = row[0], row[1], int(row[2])
            qrels.setdefault(query_id, {})[doc_id] = score
    return qrels


def beir_load(directory: Path, split: str = "test", limit_queries: int | None = None) -> BeirDataset:
    directory = Path(directory)
    qrels = qrels_load(directory / "qrels" / f"{split}.tsv")
    if limit_queries:
        qrels = dict(list(qrels.items())[:limit_queries])
    queries: dict[str, str] = {}
    with open(directory / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                if str(row["_id"]) in qrels:
                    queries[str(row["_id"])] = row["text"]
    missing = set(qrels) - set(queries)
    if missing:
        raise ValueError(f"{len(missing)} qrels queries are not in queries.jsonl, e.g. {sorted(missing)[:3]}")
    corpus: dict[str, dict[str, str]] = {}
    with open(directory / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                corpus[str(row["_id"])] = {"title": row.get("title") or "", "text": row.get("text") or ""}
    return BeirDataset(name=directory.name, corpus=corpus, queries=queries, qrels=qrels)


def beir_document_text(doc: Mapping[str, str]) -> str:
    """Title and abstract as one document, title first so a passage search sees it (BEIR 'flat')."""
    title = (doc.get("title") or "").strip()
    text = (doc.get("text") or "").strip()
    return f"{title}\n\n{text}" if title else text


# --- loading a BEIR corpus through the real ingestion pipeline ---------------------------------------------


def beir_collection_slug(dataset_name: str) -> str:
    from django.utils.text import slugify

    slug = slugify(dataset_name)[:90] or "dataset"
    return slug if slug.startswith("beir-") else f"beir-{slug}"


def celery_worker_available(timeout: float = 1.5) -> bool:
    """True when a worker answers a ping on the broker. Transports without broadcast support (kombu's
    SQLAlchemy transport) cannot answer, so the answer there is False and callers ingest in-process."""
    try:
        from rag_project.celery import app

        return bool(app.control.ping(timeout=timeout))
    except Exception:  # noqa: BLE001 - any failure means "no worker we can see"
        return False


@dataclass
class IngestReport:
    collection_id: int
    created: int = 0
    skipped: int = 0
    ready: int = 0
    failed: int = 0
    cancelled: int = 0
    chunks: int = 0
    how: str = ""
    beir_ids: dict[int, str] = field(default_factory=dict, repr=False)  # Document.pk -> BEIR _id

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "beir_ids"}


BULK_SIZE = 1000  # the bulk API's per-call maximum; the same batches here
IN_PROCESS_GROUP = 50  # documents per documents_ingest call, as the queue would group them


def _status_counts(collection_id: int) -> dict[str, int]:
    from django.db.models import Count

    from ingestion.models import Document

    rows = Document.objects.filter(collection_id=collection_id).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def _ingest_queued_in_process(collection_id: int, log) -> None:
    """Run the ingestion task's body (ingestion.services.pipeline.documents_ingest) here for each queued
    document.
    A transient provider error is retried after a pause, as the task would."""
    from genapi import GenAPIError
    from ingestion.models import Document
    from ingestion.services.pipeline import documents_ingest

    pending = list(
        Document.objects.filter(collection_id=collection_id, status=Document.Status.QUEUED)
        .order_by("id")
        .values_list("id", flat=True)
    )
    done = 0
    for start in range(0, len(pending), IN_PROCESS_GROUP):
        group = pending[start : start + IN_PROCESS_GROUP]
        for attempt in range(6):
            try:
                documents_ingest(group)
                break
            except GenAPIError as exc:
                if not exc.retryable or attempt == 5:
                    raise
                time.sleep(min(30.0, 2.0**attempt))
        done += len(group)
        if done % 1000 < IN_PROCESS_GROUP or done == len(pending):
            log(f"  ingested {done}/{len(pending)} in-process")


def beir_ingest(
    dataset: BeirDataset, slug: str, *, in_process: bool = False, timeout: float = 3600.0, log=print
) -> IngestReport:
    """Load `dataset.corpus` into the collection `slug` through ingestion.services, skipping documents whose
    BEIR id is already there, and wait until every document is ready or failed.

    With a worker answering on the broker the tasks run there; otherwise (or with `in_process`) Celery runs
    tasks eagerly and whatever is still queued is ingested here by calling the task's service directly.
    """
    from django.db import transaction

    from ingestion.models import Chunk, Collection, Document
    from ingestion.services.collections import collection_create
    from ingestion.services.documents import documents_bulk_create

    collection = Collection.objects.filter(slug=slug).first()
    if collection is None:
        collection = collection_create(
            name=f"BEIR {dataset.name}",
            slug=slug,
            description="Benchmark corpus loaded by `manage.py evaluate`.",
        )
    report = IngestReport(collection_id=collection.pk)
    loaded = {
        str(beir_id)
        for beir_id in Document.objects.filter(
            collection=collection, metadata__has_key="beir_id"
        ).values_list("metadata__beir_id", flat=True)
    }
    todo = [(doc_id, doc) for doc_id, doc in dataset.corpus.items() if doc_id not in loaded]
    report.skipped = len(dataset.corpus) - len(todo)

    use_worker = not in_process and celery_worker_available()
    report.how = (
        "tasks run by a Celery worker"
        if use_worker
        else (
            "no worker answered a ping (the database broker cannot carry one): ingested in this process"
            if not in_process
            else "ingested in this process (--in-process)"
        )
    )
    log(f"ingestion: {report.how}")
    from rag_project.celery import app

    previous_eager = app.conf.task_always_eager
    if not use_worker:
        # Nothing goes to the broker: queued work runs here; no message waits for a worker that never comes.
        app.conf.task_always_eager = True
    try:
        for start in range(0, len(todo), BULK_SIZE):
            batch = todo[start : start + BULK_SIZE]
            with transaction.atomic():
                documents_bulk_create(
                    collection=collection,
                    documents=[
                        {
                            "title": (doc["title"] or doc_id)[:500],
                            "text": beir_document_text(doc),
                            "metadata": {"beir_id": doc_id},
                        }
                        for doc_id, doc in batch
                    ],
                )
            report.created += len(batch)
            log(f"  created {min(start + BULK_SIZE, len(todo))}/{len(todo)} documents")
        if not use_worker:
            _ingest_queued_in_process(collection.pk, log)
        deadline = time.monotonic() + timeout
        last_report = 0.0
        while True:
            counts = _status_counts(collection.pk)
            waiting = counts.get("queued", 0) + counts.get("processing", 0)
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{waiting} documents still queued/processing after {timeout:.0f}s")
            if time.monotonic() - last_report > 10:
                log(f"  waiting: {counts}")
                last_report = time.monotonic()
            time.sleep(1.0)
    finally:
        app.conf.task_always_eager = previous_eager

    counts = _status_counts(collection.pk)
    report.ready = counts.get("ready", 0)
    report.failed = counts.get("failed", 0)
    report.cancelled = counts.get("cancelled", 0)
    report.chunks = Chunk.objects.filter(document__collection=collection).count()
    for pk, beir_id in Document.objects.filter(
        collection=collection, metadata__has_key="beir_id"
    ).values_list("pk", "metadata__beir_id"):
        report.beir_ids[pk] = str(beir_id)
    return report
