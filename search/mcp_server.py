"""The knowledge base as Model Context Protocol tools: `search`, `ask`, `get_passage`, `list_collections`.

Each tool is a thin shell over the service its REST view calls (`passages_search`, `answer_compose`,
`passage_with_neighbours`, `collection_list`), with the REST view's input serializer, scope, throttle
budget and `collections_readable` selector. There is no second permission path: the caller is the user and
API key that DRF authenticated in `search.mcp_views`, handed to the tools in a context variable, and every
tool decides what it may read through `ingestion.selectors`. Refusals (missing scope, an unreadable
collection, a passage that is missing or unreadable, too many requests) come back as tool errors
(`isError: true`) with the REST API's message, so an agent can read them.

The tools are async (the SDK is) and run their Django work through `sync_to_async`, thread-sensitive:
under `search.mcp_views` that is the request's own thread, with its database connection.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import PermissionDenied
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from accounts.models import ApiKey
from accounts.permissions import user_has_scope
from accounts.throttling import ApiKeyRateThrottle
from genapi import GenAPIError
from ingestion.selectors import collection_list, collections_get_readable_or_403
from search.selectors import passage_with_neighbours
from search.services import answer_compose, error_message, passages_search
from search.types import SearchFilters

CHANNEL = "mcp"
T = TypeVar("T")


@dataclass(frozen=True)
class McpCaller:
    """Who is calling: the DRF request that authenticated (throttles key on it), its user and API key."""

    request: Any
    user: Any
    api_key: ApiKey | None


CALLER: ContextVar[McpCaller] = ContextVar("citable_mcp_caller")

INSTRUCTIONS = (
    "Citable answers from a company knowledge base and cites its passages. `search` finds passages, "
    "`ask` answers a question citing them as [n], `get_passage` reads a cited passage with the passages "
    "around it, `list_collections` names the collections this key may read."
)

server = MCPServer(name="citable", instructions=INSTRUCTIONS)
_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)


class _ThrottleView:
    """What DRF's throttle reads from a view: the budget's name."""

    def __init__(self, throttle_scope: str):
        self.throttle_scope = throttle_scope


def _checked(caller: McpCaller, scope: str | None, budget: str | None) -> None:
    """The REST view's checks, in its order: scope (403 there), then its rate budget (429 there)."""
    if scope is not None and not user_has_scope(caller.user, scope, caller.api_key):
        raise ToolError(f"This API key lacks the '{scope}' scope.")
    if budget is not None:
        throttle = ApiKeyRateThrottle()
        if not throttle.allow_request(caller.request, _ThrottleView(budget)):
            wait = throttle.wait()
            retry = f"; retry in {math.ceil(wait)} s" if wait else ""
            raise ToolError(f"Too many requests for this key{retry}.")


def _readable_ids(caller: McpCaller, slugs: list[str] | None) -> list[int]:
    readable = collections_get_readable_or_403(slugs, caller.user, caller.api_key)
    return list(readable.values_list("pk", flat=True))


def _validated(serializer_class, data: dict[str, Any]) -> dict[str, Any]:
    """The REST view's input serializer, so a tool accepts exactly what the endpoint accepts."""
    serializer = serializer_class(data={k: v for k, v in data.items() if v is not None})
    if not serializer.is_valid():
        raise ToolError(f"Invalid arguments: {serializer.errors}")
    return serializer.validated_data


async def _run(scope: str | None, budget: str | None, work: Callable[[McpCaller], T]) -> T:
    caller = CALLER.get(None)
    if caller is None:  # only reachable if the server is mounted without search.mcp_views
        raise ToolError("Not authenticated.")

    def call() -> T:
        _checked(caller, scope, budget)
        try:
            return work(caller)
        except PermissionDenied as exc:
            raise ToolError(str(exc) or "Forbidden.") from exc
        except GenAPIError as exc:
            raise ToolError(error_message(exc)) from exc

    return await sync_to_async(call, thread_sensitive=True)()


@server.tool(annotations=_READ_ONLY)
async def search(
    query: str,
    collections: list[str] | None = None,
    mode: Literal["hybrid", "vector", "fulltext"] = "hybrid",
    top_k: int | None = None,
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Find passages of the knowledge base (hybrid vector + full-text search, reranked).

    `collections`: collection slugs (default: every collection this key may read). `filters`: optional
    {document_ids, metadata, mime_types, created_after, created_before}. Each result carries its
    document, page, character span and `url`. Needs the `search` scope.
    """
    from search.apis import SearchApi

    def work(caller: McpCaller) -> dict[str, Any]:
        data = _validated(
            SearchApi.InputSerializer,
            {"query": query, "collections": collections, "mode": mode, "top_k": top_k, "filters": filters},
        )
        result = passages_search(
            data["query"],
            collection_ids=_readable_ids(caller, data.get("collections")),
            filters=SearchFilters.from_value(data.get("filters")),
            mode=data["mode"],
            top_k=data.get("top_k") or settings.RAG_TOP_K,
            rerank=data["rerank"],
            user=caller.user,
            api_key=caller.api_key,
            channel=CHANNEL,
        )
        body = {
            "results": [p.as_dict() for p in result.passages],
            "reranked": result.reranked,
            "mode": result.mode,
            "took_ms": result.took_ms,
            "timings": result.timings,
            "rerank_tokens": result.rerank_tokens,
        }
        return dict(SearchApi.OutputSerializer(body).data)

    return await _run("search", "search", work)


@server.tool(annotations=_READ_ONLY)
async def ask(
    question: str,
    collections: list[str] | None = None,
    top_k: int | None = None,
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Answer a question from the knowledge base only, citing passages as [n].

    Returns `answer`, `citations` (the cited passages: document, page, character span, snippet, url) and
    the numbered `passages` the answer was written from. `found` is false when nothing relevant was
    found. Needs the `ask` scope.
    """
    from search.apis import AskApi

    def work(caller: McpCaller) -> dict[str, Any]:
        data = _validated(
            AskApi.InputSerializer,
            {"question": question, "collections": collections, "top_k": top_k, "filters": filters},
        )
        answer = answer_compose(
            data["question"],
            collection_ids=_readable_ids(caller, data.get("collections")),
            filters=SearchFilters.from_value(data.get("filters")),
            top_k=data.get("top_k"),
            user=caller.user,
            api_key=caller.api_key,
            channel=CHANNEL,
        )
        body = answer.as_dict()
        body["passages"] = [{"n": n, **p} for n, p in enumerate(body["passages"], start=1)]
        return dict(AskApi.OutputSerializer(body).data)

    return await _run("ask", "ask", work)


@server.tool(annotations=_READ_ONLY)
async def get_passage(
    chunk_id: int, document_id: int | None = None, before: int = 2, after: int = 2
) -> dict[str, Any]:
    """Read one passage (a citation's `chunk_id`) with up to `before`/`after` (0-10) passages around it
    in its document. Needs the `search` scope."""
    from search.apis import PassageApi

    def work(caller: McpCaller) -> dict[str, Any]:
        bounds = _validated(PassageApi.FilterSerializer, {"before": before, "after": after})
        context = passage_with_neighbours(
            chunk_id,
            _readable_ids(caller, None),
            bounds["before"],
            bounds["after"],
            document_id=document_id,
        )
        if context is None:
            raise ToolError("No such passage.")  # the same answer for a missing and an unreadable one
        return dict(PassageApi.OutputSerializer(context.as_dict()).data)

    return await _run("search", "search", work)


@server.tool(annotations=_READ_ONLY)
async def list_collections() -> dict[str, Any]:
    """The collections this key may read (slug, name, description, public or not)."""
    from ingestion.apis import CollectionListCreateApi

    def work(caller: McpCaller) -> dict[str, Any]:
        collections = collection_list(caller.user, caller.api_key)
        return {"collections": list(CollectionListCreateApi.OutputSerializer(collections, many=True).data)}

    return await _run(None, None, work)
