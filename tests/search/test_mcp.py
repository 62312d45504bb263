"""`/mcp` through the official MCP client (the `mcp` SDK's `Client` over Streamable HTTP) against a live
server on a real socket: the same keys, scopes and readable collections as the REST API."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import anyio
import httpx2
import pytest
from django.utils import timezone
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from search.models import QueryLog
from tests.factories import ApiKeyFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = {"search", "ask", "get_passage", "list_collections"}


def run_async(function):
    """`anyio.run(function)` on a thread of its own: the browser tests' playwright (sync API) keeps an event
    loop running on the main thread for the whole session, and a second loop may not run there."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, function).result()


def mcp_client(live_server, key: str | None, mode: str = "auto") -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    return Client(streamable_http_client(f"{live_server.url}/mcp", http_client=http), mode=mode)


def call(live_server, key: str | None, tool: str, arguments: dict | None = None, mode: str = "auto"):
    """(is_error, structured result or error text) of one tool call through a fresh client."""

    async def run():
        async with mcp_client(live_server, key, mode) as client:
            result = await client.call_tool(tool, arguments or {})
            text = "".join(getattr(part, "text", "") for part in result.content)
            if result.is_error:
                return True, text
            return False, result.structured_content or json.loads(text)

    return run_async(run)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_the_official_client_lists_the_tools(live_server, kb, mode):
    key = ApiKeyFactory().raw_key

    async def run():
        async with mcp_client(live_server, key, mode) as client:
            return await client.list_tools()

    tools = {tool.name: tool for tool in run_async(run).tools}
    assert set(tools) == TOOLS
    assert all(tool.annotations.read_only_hint for tool in tools.values())
    assert "query" in tools["search"].input_schema["properties"]


def test_search_returns_the_readable_passages_only(live_server, kb):
    key = ApiKeyFactory(scopes=["search"])
    is_error, body = call(live_server, key.raw_key, "search", {"query": "rotate a signing key", "top_k": 3})
    assert not is_error, body
    assert len(body["results"]) == 3
    top = body["results"][0]
    assert top["chunk_id"] == kb["keys"].chunks.get(ordinal=1).pk
    assert {"document_id", "page", "char_start", "char_end", "url"} <= set(top)
    assert kb["salaries"].pk not in {r["document_id"] for r in body["results"]}
    entry = QueryLog.objects.get(kind="search")
    assert entry.channel == "mcp" and entry.api_key == key


def test_ask_answers_with_citations(live_server, kb):
    key = ApiKeyFactory(scopes=["ask"]).raw_key
    is_error, body = call(live_server, key, "ask", {"question": "How do I rotate a signing key?"})
    assert not is_error, body
    assert body["found"] is True and body["answer"]
    assert body["citations"], body
    cited = body["citations"][0]
    assert {"n", "document_id", "chunk_id", "page", "char_start", "char_end", "snippet"} <= set(cited)
    assert body["passages"][cited["n"] - 1]["chunk_id"] == cited["chunk_id"]
    assert QueryLog.objects.get(kind="ask").channel == "mcp"


def test_get_passage_with_neighbours(live_server, kb):
    key = ApiKeyFactory(scopes=["search"]).raw_key
    middle = kb["keys"].chunks.get(ordinal=1)
    is_error, body = call(live_server, key, "get_passage", {"chunk_id": middle.pk, "before": 1, "after": 1})
    assert not is_error, body
    assert body["passage"]["chunk_id"] == middle.pk
    assert [p["ordinal"] for p in body["before"]] == [0]
    assert [p["ordinal"] for p in body["after"]] == [2]


def test_list_collections_follows_the_selector(live_server, kb):
    reader = UserFactory()
    kb["private"].reader_users.add(reader)
    wide = ApiKeyFactory(user=reader).raw_key
    narrowed = ApiKeyFactory(user=reader, collections=[kb["public"]]).raw_key
    assert {c["slug"] for c in call(live_server, wide, "list_collections")[1]["collections"]} == {
        "handbook",
        "hr-private",
    }
    assert {c["slug"] for c in call(live_server, narrowed, "list_collections")[1]["collections"]} == {
        "handbook"
    }


def test_a_key_that_may_not_read_a_collection_is_refused(live_server, kb):
    """Naming it is the REST API's 403 message; not naming it leaves its passages out; its passage is
    'No such passage.', exactly like a missing one."""
    key = ApiKeyFactory().raw_key
    for tool, arguments in (
        ("search", {"query": "salary reviews", "collections": ["hr-private"]}),
        ("ask", {"question": "When are salary reviews?", "collections": ["hr-private"]}),
        ("search", {"query": "salary reviews", "collections": ["no-such-collection"]}),
    ):
        is_error, text = call(live_server, key, tool, arguments)
        assert is_error and "may not read collection" in text, (tool, text)
    is_error, body = call(live_server, key, "search", {"query": "salary reviews signing bonus"})
    assert not is_error and kb["salaries"].pk not in {r["document_id"] for r in body["results"]}
    secret = kb["salaries"].chunks.get()
    unreadable = call(live_server, key, "get_passage", {"chunk_id": secret.pk})
    missing = call(live_server, key, "get_passage", {"chunk_id": secret.pk + 10_000})
    assert unreadable == missing == (True, "Error executing tool get_passage: No such passage.")
    # A reader of that collection gets it: the refusal above came from the selector, not from the tool.
    reader = UserFactory()
    kb["private"].reader_users.add(reader)
    reader_key = ApiKeyFactory(user=reader).raw_key
    is_error, body = call(live_server, reader_key, "get_passage", {"chunk_id": secret.pk})
    assert not is_error and body["passage"]["chunk_id"] == secret.pk


def test_a_read_only_scope_cannot_ask(live_server, kb):
    """A `search`-only key reads passages but cannot have them answered; an `ingest`-only key reads
    neither (the REST API's scope rules)."""
    search_only = ApiKeyFactory(scopes=["search"]).raw_key
    is_error, text = call(live_server, search_only, "ask", {"question": "How do I rotate a signing key?"})
    assert is_error and "lacks the 'ask' scope" in text
    assert not QueryLog.objects.filter(kind="ask").exists()
    ingest_only = ApiKeyFactory(scopes=["ingest"]).raw_key
    for tool, arguments in (("search", {"query": "signing"}), ("get_passage", {"chunk_id": 1})):
        is_error, text = call(live_server, ingest_only, tool, arguments)
        assert is_error and "lacks the 'search' scope" in text


@pytest.mark.parametrize("key", [None, "cit_000000000000_wrong", "not-a-key"])
def test_a_missing_or_invalid_key_gets_401(live_server, kb, key):
    async def run():
        async with mcp_client(live_server, key) as client:
            await client.list_tools()

    # The client reports the HTTP error as an MCPError (inside its task groups): no tool list comes back.
    with pytest.RaisesGroup(pytest.RaisesGroup(MCPError)):
        run_async(run)
    response = httpx2.post(
        f"{live_server.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {key}"} if key else {},
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_revoked_key_is_refused(live_server, kb):
    api_key = ApiKeyFactory()
    api_key.revoked_at = timezone.now()
    api_key.save()
    response = httpx2.post(
        f"{live_server.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {api_key.raw_key}"},
    )
    assert response.status_code == 401


def test_get_and_delete_are_405(live_server, kb):
    headers = {"Authorization": f"Bearer {ApiKeyFactory().raw_key}"}
    for method in ("GET", "DELETE"):
        response = httpx2.request(method, f"{live_server.url}/mcp", headers=headers)
        assert response.status_code == 405
        assert "POST" in response.headers["Allow"] and method not in response.headers["Allow"]


def test_the_ask_tool_spends_the_ask_budget(live_server, kb, settings):
    """An agent cannot get around `RAG_THROTTLE_ASK` by asking through MCP: the tool counts against the
    key's ask budget, which the REST endpoint shares."""
    rates = dict(settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES") or {})
    rates["ask"] = "1/min"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    key = ApiKeyFactory().raw_key
    assert call(live_server, key, "ask", {"question": "How do I rotate a signing key?"})[0] is False
    is_error, text = call(live_server, key, "ask", {"question": "How do I rotate a signing key?"})
    assert is_error and "Too many requests" in text
    rest = httpx2.post(
        f"{live_server.url}/api/ask",
        json={"question": "How do I rotate a signing key?"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert rest.status_code == 429
    assert call(live_server, key, "search", {"query": "signing"})[0] is False  # another budget
