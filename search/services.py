"""Searches and cited answers, each recorded in the QueryLog.

`answer_compose` returns a whole Answer; `answer_stream` yields the same answer as events:
("sources", {...}), ("delta", {"text"}), ("citations", {...}), ("usage", {...}), ("done", {...}), or
("error", {"code", "message"}) once the stream has started and something fails (never a torn stream).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import signals
from django.utils import timezone

from genapi import GenAPIError, ProviderUnavailableError, RateLimitedError
from rag_project.compiled_sql import prepared_cursor
from search.answer import (
    APIS,
    NOTHING_FOUND,
    completion_create,
    completion_stream,
    prompt_build,
)
from search.citation_check import citations_check
from search.citations import CitationFilter, citations_build, citations_parse
from search.fulltext import statements_pipelined
from search.models import QueryLog
from search.rewrite import Rewrite, query_rewrite
from search.selectors import passages_retrieve
from search.types import Answer, RetrievalResult, SearchFilters, Timings

log = logging.getLogger(__name__)


def _query_log_fields(
    *,
    kind: str,
    query: str,
    user=None,
    api_key=None,
    channel: str = "api",
    search_query: str = "",
    mode: str = "",
    collection_ids: list[int] | None = None,
    filters: SearchFilters | None = None,
    chunk_ids: list[int] | None = None,
    cited_chunk_ids: list[int] | None = None,
    model: str = "",
    api: str = "",
    streamed: bool = False,
    usage: dict[str, int] | None = None,
    latency_ms: int = 0,
    reranked: bool = False,
    rerank_tokens: int = 0,
    timings: dict[str, float] | None = None,
    error: str = "",
) -> dict[str, Any]:
    usage = usage or {}
    return dict(
        kind=kind,
        query=query[:10000],
        user=user if getattr(user, "is_authenticated", False) else None,
        api_key=api_key,
        channel=channel[:32],
        search_query=search_query[:10000] if search_query != query else "",
        mode=mode,
        collection_ids=list(collection_ids or []),
        filters=filters.as_dict() if filters else {},
        chunk_ids=list(chunk_ids or []),
        cited_chunk_ids=list(cited_chunk_ids or []),
        model=model[:200],
        api=api,
        streamed=streamed,
        input_tokens=max(0, int(usage.get("input_tokens") or 0)),
        output_tokens=max(0, int(usage.get("output_tokens") or 0)),
        latency_ms=max(0, int(latency_ms)),
        reranked=reranked,
        rerank_tokens=max(0, int(rerank_tokens)),
        timings=dict(timings or {}),
        error=error[:5000],
    )


def query_log_record(*, entry: QueryLog | None = None, **fields: Any) -> QueryLog | None:
    """Write one QueryLog row (or, given `entry`, complete the row written when a stream started). A
    failure to log is reported and swallowed: it must not fail the answer."""
    try:
        values = _query_log_fields(**fields)
        if entry is not None:
            with transaction.atomic():
                with statements_pipelined():
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL synchronous_commit = off")
                    QueryLog.objects.filter(pk=entry.pk).update(**values)
            return entry
        return _query_log_insert(QueryLog(**values, created_at=timezone.now()))
    except Exception:  # noqa: BLE001 - the log is secondary to the answer
        log.exception("could not record the query log")
        return None


@functools.cache
def _query_log_insert_sql() -> tuple[str, list]:
    """One INSERT for a QueryLog row, built once from the model (the ORM compiled it on every search)."""
    fields = [f for f in QueryLog._meta.concrete_fields if not f.primary_key]
    table = connection.ops.quote_name(QueryLog._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    # Typed placeholders: a SELECT list, unlike VALUES, does not take its types from the target columns.
    placeholders = ", ".join(f"%s::{f.db_type(connection)}" for f in fields)
    # `synchronous_commit` off for this statement's own transaction only: the row does not wait for the
    # WAL flush (5-10 ms on the benchmark machine); a crash can lose the last fraction of a second of log
    # rows, never corrupt them. `set_config` inside the statement makes it one round trip, no BEGIN/COMMIT.
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT {placeholders} "  # noqa: S608 - names from the model
        "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS unflushed RETURNING id"
    )
    return sql, fields


def _query_log_insert(row: QueryLog) -> QueryLog:
    sql, fields = _query_log_insert_sql()
    # The ORM's signals still fire (operations/search_metrics.py turns the timings into metrics).
    signals.pre_save.send(
        sender=QueryLog, instance=row, raw=False, using=connection.alias, update_fields=None
    )
    params = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
    # Inside a caller's transaction a failed insert must not break it: a savepoint, as the ORM's would be.
    guard = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with guard, prepared_cursor() as cursor:
        cursor.execute(sql, params)
        row.pk = cursor.fetchone()[0]
    row._state.adding = False
    signals.post_save.send(
        sender=QueryLog, instance=row, created=True, raw=False, using=connection.alias, update_fields=None
    )
    return row


def passages_search(
    query: str,
    *,
    collection_ids: list[int],
    filters: SearchFilters | dict[str, Any] | None = None,
    mode: str = "hybrid",
    top_k: int | None = None,
    rerank: bool = True,
    user=None,
    api_key=None,
    channel: str = "api",
) -> RetrievalResult:
    """`passages_retrieve`, recorded in the QueryLog with its timings and rerank tokens."""
    started = time.perf_counter()
    timings = Timings()
    filters = SearchFilters.from_value(filters)
    top_k = int(top_k or settings.RAG_TOP_K)
    fields: dict[str, Any] = dict(
        kind=QueryLog.Kind.SEARCH, query=query, user=user, api_key=api_key, channel=channel, mode=mode,
        collection_ids=collection_ids, filters=filters,
    )  # fmt: skip
    try:
        result = passages_retrieve(
            query,
            collection_ids=collection_ids,
            filters=filters,
            mode=mode,
            top_k=top_k,
            candidates=max(settings.RAG_RERANK_CANDIDATES, top_k),
            rerank=rerank,
            timings=timings,
        )
    except Exception as exc:
        query_log_record(**fields, latency_ms=_ms(started), timings=timings.as_dict(), error=_error_text(exc))
        raise
    entry = query_log_record(
        **fields,
        chunk_ids=[p.chunk_id for p in result.passages],
        reranked=result.reranked,
        rerank_tokens=result.rerank_tokens,
        timings=result.timings,
        latency_ms=_ms(started),
    )
    result.query_log_id = entry.pk if entry else None
    return result


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def error_code(exc: BaseException) -> str:
    """The API's error code for a failure while answering."""
    if isinstance(exc, RateLimitedError):
        return "provider_rate_limited"
    if isinstance(exc, ProviderUnavailableError):
        return "provider_unavailable"
    if isinstance(exc, GenAPIError):
        return "provider_error"
    return "internal_error"


def error_message(exc: BaseException) -> str:
    if isinstance(exc, GenAPIError):
        return f"The model provider failed: {exc.message}"
    return "The answer could not be completed."


def _api_choose(api: str | None) -> str:
    api = (api or settings.RAG_ANSWER_API or "chat").lower()
    if api not in APIS:
        raise ValueError(f"api must be one of {APIS}, got {api!r}")
    return api


def _retrieve_for_question(
    question: str,
    collection_ids: list[int],
    filters: SearchFilters,
    top_k: int | None,
    history,
    timings: Timings,
) -> tuple[Rewrite, RetrievalResult]:
    with timings.stage("rewrite"):
        rewrite = query_rewrite(question, history)
    top_k = int(top_k or settings.RAG_TOP_K)
    result = passages_retrieve(
        rewrite.query,
        collection_ids=collection_ids,
        filters=filters,
        mode="hybrid",
        top_k=top_k,
        candidates=max(settings.RAG_RERANK_CANDIDATES, top_k),
        rerank=True,
        timings=timings,
    )
    return rewrite, result


def answer_compose(
    question: str,
    *,
    collection_ids: list[int],
    filters: SearchFilters | dict[str, Any] | None = None,
    top_k: int | None = None,
    api: str | None = None,
    history: list[dict[str, str]] | None = None,
    user=None,
    api_key=None,
    channel: str = "api",
) -> Answer:
    """Answer `question` from the passages of `collection_ids` (the caller's readable collections), citing
    them `[n]`. `api` is "chat" or "responses" (default settings.RAG_ANSWER_API); `history` holds earlier
    {question, answer} turns. When no passage passes the rerank threshold, answers NOTHING_FOUND without
    calling the model. Raises GenAPIError when the model call fails (after the client's retries)."""
    started = time.perf_counter()
    timings = Timings()
    api = _api_choose(api)
    filters = SearchFilters.from_value(filters)
    fields: dict[str, Any] = dict(
        kind=QueryLog.Kind.ASK, query=question, user=user, api_key=api_key, channel=channel, mode="hybrid",
        collection_ids=collection_ids, filters=filters, api=api,
    )  # fmt: skip
    model = ""
    try:
        rewrite, retrieval = _retrieve_for_question(
            question, collection_ids, filters, top_k, history, timings
        )
        search_query = rewrite.query
        fields.update(
            search_query=search_query, reranked=retrieval.reranked, rerank_tokens=retrieval.rerank_tokens
        )
        passages = retrieval.passages
        fields["chunk_ids"] = [p.chunk_id for p in passages]
        if not passages:
            answer = Answer(
                text=NOTHING_FOUND, citations=[], passages=[], model="", api=api, reranked=retrieval.reranked,
                search_query=search_query, found=False,
            )  # fmt: skip
        else:
            instructions, messages = prompt_build(question, passages, history)
            model = settings.GENAPI_CHAT_MODEL
            with timings.stage("answer"):
                text, usage, model = completion_create(api, instructions, messages)
            cleaned, citations = citations_parse(text, passages)
            with timings.stage("check"):
                cleaned, citations, checks = citations_check(cleaned, passages, citations)
            answer = Answer(
                text=cleaned, citations=citations, passages=passages, model=model, api=api, usage=usage,
                reranked=retrieval.reranked, search_query=search_query,
                citation_checks=[c.as_dict() for c in checks],
            )  # fmt: skip
    except Exception as exc:
        query_log_record(
            **fields, model=model, latency_ms=_ms(started), timings=timings.as_dict(),
            error=_error_text(exc),
        )  # fmt: skip
        raise
    answer.took_ms = _ms(started)
    answer.timings = timings.as_dict()
    answer.rerank_tokens = retrieval.rerank_tokens
    answer.rewrite_method = rewrite.method
    entry = query_log_record(
        **fields, model=answer.model, usage=answer.usage, latency_ms=answer.took_ms,
        cited_chunk_ids=[c.chunk_id for c in answer.citations], timings=answer.timings,
    )  # fmt: skip
    answer.query_log_id = entry.pk if entry else None
    return answer


def answer_stream(
    question: str,
    *,
    collection_ids: list[int],
    filters: SearchFilters | dict[str, Any] | None = None,
    top_k: int | None = None,
    api: str | None = None,
    history: list[dict[str, str]] | None = None,
    user=None,
    api_key=None,
    channel: str = "api",
) -> Iterator[tuple[str, dict[str, Any]]]:
    """`answer_compose` as a stream of (event, data): "sources" {passages, reranked, search_query}, "delta"
    {text} (markers already cleaned, split markers handled), "citations" {citations, checks} (after the
    citation check: each citation's `supported` and `score`, one check per marker and passage), "usage"
    {input_tokens, output_tokens}, "done" {answer, model, api, reranked, took_ms, found}; `answer` is the
    checked text (without the unsupported markers when RAG_CITATION_DROP_UNSUPPORTED is on). Any failure
    after the first event is one final "error" {code, message}; the QueryLog row is written in every
    case, also when the consumer stops early."""
    started = time.perf_counter()
    timings = Timings()
    api = _api_choose(api)
    filters = SearchFilters.from_value(filters)
    fields: dict[str, Any] = dict(
        kind=QueryLog.Kind.ASK, query=question, user=user, api_key=api_key, channel=channel, mode="hybrid",
        collection_ids=collection_ids, filters=filters, api=api, streamed=True,
    )  # fmt: skip
    state: dict[str, Any] = {"model": "", "usage": {}, "cited": [], "error": "client disconnected"}
    # Written now and completed at the end, so `done` can carry its id (feedback refers to it).
    entry = query_log_record(**fields)
    query_id = entry.pk if entry else None
    try:
        rewrite, retrieval = _retrieve_for_question(
            question, collection_ids, filters, top_k, history, timings
        )
        search_query = rewrite.query
        passages = retrieval.passages
        fields.update(
            search_query=search_query, reranked=retrieval.reranked, chunk_ids=[p.chunk_id for p in passages],
            rerank_tokens=retrieval.rerank_tokens,
        )  # fmt: skip
        yield (
            "sources",
            {
                "passages": [{"n": n, **p.as_dict()} for n, p in enumerate(passages, start=1)],
                "reranked": retrieval.reranked,
                "search_query": search_query,
                "rewrite_method": rewrite.method,
            },
        )
        if not passages:
            yield "delta", {"text": NOTHING_FOUND}
            yield "citations", {"citations": [], "checks": []}
            yield "usage", {"input_tokens": 0, "output_tokens": 0}
            state["error"] = ""
            yield "done", _done(NOTHING_FOUND, "", api, retrieval, started, timings, query_id, found=False)
            return
        instructions, messages = prompt_build(question, passages, history)
        state["model"] = settings.GENAPI_CHAT_MODEL
        flt = CitationFilter(len(passages))
        text_parts: list[str] = []
        answer_started = time.perf_counter()
        for kind, value in completion_stream(api, instructions, messages):
            if kind == "delta":
                cleaned = flt.feed(value)
                if cleaned:
                    text_parts.append(cleaned)
                    yield "delta", {"text": cleaned}
            elif kind == "usage":
                state["usage"] = value
            elif kind == "model":
                state["model"] = value
        timings.add("answer", (time.perf_counter() - answer_started) * 1000)
        tail = flt.flush()
        if tail:
            text_parts.append(tail)
            yield "delta", {"text": tail}
        with timings.stage("check"):
            text, citations, checks = citations_check(
                "".join(text_parts), passages, citations_build(flt.cited, passages)
            )
        state["cited"] = [c.chunk_id for c in citations]
        yield (
            "citations",
            {"citations": [c.as_dict() for c in citations], "checks": [c.as_dict() for c in checks]},
        )
        usage = {"input_tokens": 0, "output_tokens": 0, **state["usage"]}
        yield "usage", usage
        state["error"] = ""
        # With unsupported citations dropped, `answer` differs from the deltas: it is the final text.
        yield "done", _done(text, state["model"], api, retrieval, started, timings, query_id, found=True)
    except GeneratorExit:
        raise
    except Exception as exc:
        if not isinstance(exc, GenAPIError):
            log.exception("answer stream failed")
        state["error"] = _error_text(exc)
        yield "error", {"code": error_code(exc), "message": error_message(exc)}
    finally:
        query_log_record(
            entry=entry, **fields, model=state["model"], usage=state["usage"], latency_ms=_ms(started),
            cited_chunk_ids=state["cited"], error=state["error"], timings=timings.as_dict(),
        )  # fmt: skip


def _done(
    text: str,
    model: str,
    api: str,
    retrieval: RetrievalResult,
    started: float,
    timings: Timings,
    query_id: int | None,
    *,
    found: bool,
) -> dict[str, Any]:
    return {
        "query_id": query_id,
        "answer": text,
        "model": model,
        "api": api,
        "reranked": retrieval.reranked,
        "took_ms": _ms(started),
        "found": found,
        "timings": timings.as_dict(),
        "rerank_tokens": retrieval.rerank_tokens,
    }
