"""Thumbs up or down on an answer or a search, and the judged queries they make for evaluation.

Judgements are per document, as in BEIR: the document of the passage a person expected is relevant
(grade 2); a thumbs up makes the documents the answer cited relevant (grade 1); a thumbs down makes them
judged non-relevant (grade 0) unless someone expected them. Queries with no relevant document cannot be
scored (nDCG is undefined) and are counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import QuerySet

from ingestion.models import Chunk
from search.models import Feedback, QueryLog


def query_log_of_or_none(query_id: int, user) -> QueryLog | None:
    """The query if `user` made it: people rate their own answers, and ids reveal nothing else."""
    if not getattr(user, "is_authenticated", False):
        return None
    return QueryLog.objects.filter(pk=query_id, user=user).first()


def feedback_give(
    query_log: QueryLog, user, *, rating: int, comment: str = "", expected_chunk: Chunk | None = None
) -> tuple[Feedback, bool]:
    """Record (or change: one opinion per person per answer) feedback. Returns (feedback, created)."""
    return Feedback.objects.update_or_create(
        query_log=query_log,
        user=user,
        defaults={"rating": rating, "comment": comment, "expected_chunk": expected_chunk},
    )


def feedback_of(user) -> QuerySet[Feedback]:
    return Feedback.objects.filter(user=user).select_related("query_log")


@dataclass
class JudgedQueries:
    """A BEIR-shaped judged set: query id -> text, collections, and {document id: grade}."""

    queries: dict[str, str] = field(default_factory=dict)
    collection_ids: dict[str, list[int]] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    feedback_count: int = 0
    up: int = 0
    down: int = 0
    unscorable: int = 0  # queries whose feedback names no relevant document


def judged_queries_from_feedback(feedback: QuerySet[Feedback] | None = None) -> JudgedQueries:
    """Group feedback by query text (the same question asked twice is one judged query)."""
    feedback = feedback if feedback is not None else Feedback.objects.all()
    rows = list(feedback.select_related("query_log", "expected_chunk").order_by("created_at", "id"))
    cited_chunks = {cid for f in rows for cid in (f.query_log.cited_chunk_ids or [])}
    document_of = dict(Chunk.objects.filter(pk__in=cited_chunks).values_list("pk", "document_id"))
    judged = JudgedQueries(feedback_count=len(rows))
    ids_by_text: dict[str, str] = {}
    for f in rows:
        text = " ".join(f.query_log.query.split())
        key = text.lower()
        query_id = ids_by_text.setdefault(key, f"fb{len(ids_by_text) + 1}")
        judged.queries.setdefault(query_id, text)
        collections = judged.collection_ids.setdefault(query_id, [])
        collections.extend(c for c in f.query_log.collection_ids if c not in collections)
        grades = judged.qrels.setdefault(query_id, {})
        cited_docs = {str(document_of[c]) for c in f.query_log.cited_chunk_ids or [] if c in document_of}
        if f.rating > 0:
            judged.up += 1
            for doc in cited_docs:
                grades[doc] = max(grades.get(doc, 0), 1)
        else:
            judged.down += 1
            for doc in cited_docs:
                grades.setdefault(doc, 0)
        if f.expected_chunk is not None:
            grades[str(f.expected_chunk.document_id)] = 2
    for query_id in list(judged.qrels):
        if not any(grade > 0 for grade in judged.qrels[query_id].values()):
            judged.unscorable += 1
            del judged.qrels[query_id]
    return judged
