"""The REST endpoints over the real stack: authentication, permissions, JSON and server-sent events."""

from __future__ import annotations

import json

import pytest
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import rag_project.cache
from search.apis import SearchApi
from search.models import QueryLog
from tests.factories import ApiKeyFactory, CollectionFactory, DocumentFactory, active_space, bearer

pytestmark = pytest.mark.django_db

QUESTION = "How do I rotate a signing key?"


@pytest.fixture
def client() -> Client:
    return Client()


def post(client, path, body, caller=None, **extra):
    headers = bearer(caller.raw_key) if caller else {}
    return client.post(path, data=json.dumps(body), content_type="application/json", **headers, **extra)


def parse_sse(response) -> list[tuple[str, dict]]:
    raw = b"".join(response.streaming_content).decode()
    events = []
    for block in raw.strip().split("\n\n"):
        name = data = None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
        events.append((name, data))
    return events


def test_search_returns_results(kb, client):
    caller = ApiKeyFactory()
    response = post(client, "/api/search", {"query": "rotate a signing key", "top_k": 3}, caller)
    assert response.status_code == 200, response.content
    body = response.json()
    # The view builds its body without the OutputSerializer: it must be what the serializer documents.
    assert SearchApi.OutputSerializer(body).data == body
    assert SearchApi.OutputSerializer(data=body).is_valid(), SearchApi.OutputSerializer(data=body).errors
    assert set(body) == {"query_id", "results", "reranked", "mode", "took_ms", "timings", "rerank_tokens"}
    assert body["reranked"] is True and body["mode"] == "hybrid"
    assert len(body["results"]) == 3
    top = body["results"][0]
    planted = kb["keys"].chunks.get(ordinal=1)
    assert top["chunk_id"] == planted.pk and top["document_id"] == kb["keys"].pk
    for field in ("title", "metadata", "text", "page", "char_start", "char_end", "score", "highlights"):
        assert field in top
    assert top["metadata"] == {"team": "platform", "lang": "en"}
    # The private collection is not readable by this user.
    assert kb["salaries"].pk not in {r["document_id"] for r in body["results"]}
    assert QueryLog.objects.get(kind="search").api_key == caller


def test_search_with_collections_filters_and_modes(kb, client):
    caller = ApiKeyFactory()
    body = {
        "query": "team",
        "collections": ["handbook"],
        "filters": {"metadata": {"team": "billing"}, "mime_type": "text/markdown"},
        "mode": "fulltext",
        "rerank": False,
    }
    response = post(client, "/api/search", body, caller)
    assert response.status_code == 200, response.content
    assert {r["document_id"] for r in response.json()["results"]} == {kb["billing"].pk}
    assert response.json()["reranked"] is False


def test_unreadable_collection_is_forbidden(kb, client):
    caller = ApiKeyFactory()
    for slug in ("hr-private", "does-not-exist"):
        response = post(client, "/api/search", {"query": "salary", "collections": [slug]}, caller)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        response = post(
            client, "/api/ask", {"question": "salary?", "collections": ["handbook", slug]}, caller
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    reader = ApiKeyFactory()
    kb["private"].reader_users.add(reader.user)
    response = post(client, "/api/search", {"query": "salary", "collections": ["hr-private"]}, reader)
    assert response.status_code == 200
    assert {r["document_id"] for r in response.json()["results"]} == {kb["salaries"].pk}


def test_key_narrowed_to_a_collection_reads_only_it(kb, space, client):
    other = CollectionFactory(slug="other", is_public=True)
    weekly = DocumentFactory(
        collection=other, passages=["Signing keys for the other team rotate weekly."], space=space
    )
    caller = ApiKeyFactory(collections=[other])
    response = post(client, "/api/search", {"query": "signing keys rotate"}, caller)
    assert {r["document_id"] for r in response.json()["results"]} == {weekly.pk}
    assert (
        post(client, "/api/search", {"query": "keys", "collections": ["handbook"]}, caller).status_code == 403
    )


def test_unauthenticated_and_revoked_keys_get_401(kb, client):
    for path, body in (("/api/search", {"query": "keys"}), ("/api/ask", {"question": "keys?"})):
        response = post(client, path, body)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
        bad = client.post(path, json.dumps(body), content_type="application/json",
                          HTTP_AUTHORIZATION="Bearer cit_abcdef123456_wrong")  # fmt: skip
        assert bad.status_code == 401
        caller = ApiKeyFactory()
        caller.revoked_at = timezone.now()
        caller.save()
        revoked = post(client, path, body, caller)
        assert revoked.status_code == 401
        assert revoked.json()["error"]["code"] == "authentication_failed"
    assert client.get(f"/api/documents/{kb['keys'].pk}/chunks/1").status_code == 401


def test_scopes_are_enforced(kb, client):
    search_only = ApiKeyFactory(scopes=["search"])
    assert post(client, "/api/search", {"query": "keys"}, search_only).status_code == 200
    response = post(client, "/api/ask", {"question": "keys?"}, search_only)
    assert response.status_code == 403


def test_session_users_can_search(kb, client):
    caller = ApiKeyFactory()
    client.force_login(caller.user)
    assert post(client, "/api/search", {"query": "keys"}).status_code == 200


def test_invalid_requests_are_400(kb, client):
    caller = ApiKeyFactory()
    for body in (
        {},
        {"query": ""},
        {"query": "x", "top_k": 0},
        {"query": "x", "top_k": 101},
        {"query": "x", "mode": "psychic"},
        {"query": "x", "filters": {"metadata": {"k": "nul\u0000"}}},
        {"query": "x", "filters": {"document_ids": [2**64]}},
        {"query": "x\u0000"},
    ):
        response = post(client, "/api/search", body, caller)
        assert response.status_code == 400, (body, response.content)
        assert response.json()["error"]["code"] == "invalid"
    assert post(client, "/api/ask", {"question": "x", "api": "telepathy"}, caller).status_code == 400


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_ask_json(kb, client, genapi, api):
    caller = ApiKeyFactory()
    response = post(client, "/api/ask", {"question": QUESTION, "api": api}, caller)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"answer", "citations", "passages", "model", "usage", "reranked", "took_ms"}
    planted = kb["keys"].chunks.get(ordinal=1)
    citation = next(c for c in body["citations"] if c["chunk_id"] == planted.pk)
    assert set(citation) == {"n", "document_id", "chunk_id", "title", "page", "char_start", "char_end",
                             "snippet", "url", "supported", "score"}  # fmt: skip
    # The stand-in quotes the passages it cites: the citation check finds each one supported.
    assert all(c["supported"] is True and c["score"] >= 0.9 for c in body["citations"]), body["citations"]
    assert {c["n"] for c in body["citation_checks"]} == {c["n"] for c in body["citations"]}
    assert (citation["char_start"], citation["char_end"]) == (planted.char_start, planted.char_end)
    assert body["passages"][citation["n"] - 1]["chunk_id"] == planted.pk
    assert body["passages"][citation["n"] - 1]["n"] == citation["n"]
    assert f"[{citation['n']}]" in body["answer"]
    assert body["api"] == api and body["usage"]["output_tokens"] > 0
    log = QueryLog.objects.get(kind="ask")
    assert (log.user, log.api_key, log.api) == (caller.user, caller, api)


@pytest.mark.parametrize("how", ["body", "accept"])
def test_ask_streams_server_sent_events(kb, client, genapi, how):
    caller = ApiKeyFactory()
    if how == "body":
        response = post(client, "/api/ask", {"question": QUESTION, "stream": True}, caller)
    else:
        response = post(client, "/api/ask", {"question": QUESTION}, caller, HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-cache" and response["X-Accel-Buffering"] == "no"
    events = parse_sse(response)
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-3:] == ["citations", "usage", "done"]
    assert set(names[1:-3]) == {"delta"}
    text = "".join(data["text"] for name, data in events if name == "delta")
    assert events[-1][1]["answer"] == text
    planted = kb["keys"].chunks.get(ordinal=1)
    assert planted.pk in {c["chunk_id"] for c in events[-3][1]["citations"]}
    assert all(c["supported"] is True for c in events[-3][1]["citations"])
    assert [c["supported"] for c in events[-3][1]["checks"]] and all(
        c["supported"] for c in events[-3][1]["checks"]
    )


def test_ask_stream_provider_error_is_an_error_event(kb, client, genapi):
    caller = ApiKeyFactory()
    genapi.set_knobs(fail_next={"endpoint": "chat/completions", "in_stream": True})
    response = post(client, "/api/ask", {"question": QUESTION, "stream": True, "api": "chat"}, caller)
    assert response.status_code == 200
    events = parse_sse(response)
    assert events[0][0] == "sources" and events[-1][0] == "error"
    assert events[-1][1]["code"] in {"provider_error", "provider_unavailable"}


def test_ask_json_provider_failure_is_502(kb, client, genapi):
    caller = ApiKeyFactory()
    genapi.set_knobs(fail_next={"endpoint": "chat/completions", "status": 400})
    response = post(client, "/api/ask", {"question": QUESTION, "api": "chat"}, caller)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_error"


def test_errors_before_the_stream_are_sse_when_only_sse_is_accepted(kb, client):
    caller = ApiKeyFactory()
    response = post(client, "/api/ask", {"question": "x", "collections": ["hr-private"]}, caller,
                    HTTP_ACCEPT="text/event-stream")  # fmt: skip
    assert response.status_code == 403
    assert response.content.startswith(b"event: error\ndata: ")
    assert json.loads(response.content.split(b"data: ", 1)[1])["code"] == "forbidden"


def test_chunk_with_neighbours(kb, client):
    caller = ApiKeyFactory()
    planted = kb["keys"].chunks.get(ordinal=1)
    response = client.get(f"/api/documents/{kb['keys'].pk}/chunks/{planted.pk}", **bearer(caller.raw_key))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["passage"]["chunk_id"] == planted.pk
    assert [p["ordinal"] for p in body["before"]] == [0]
    assert [p["ordinal"] for p in body["after"]] == [2]
    response = client.get(
        f"/api/documents/{kb['keys'].pk}/chunks/{planted.pk}?before=0&after=0", **bearer(caller.raw_key)
    )
    assert response.json()["before"] == [] and response.json()["after"] == []
    assert (
        client.get(
            f"/api/documents/{kb['keys'].pk}/chunks/{planted.pk}?before=99", **bearer(caller.raw_key)
        ).status_code
        == 400
    )
    # Not readable, wrong document, missing: the same 404.
    secret = kb["salaries"].chunks.get()
    for path in (
        f"/api/documents/{kb['salaries'].pk}/chunks/{secret.pk}",
        f"/api/documents/{kb['billing'].pk}/chunks/{planted.pk}",
        f"/api/documents/{kb['keys'].pk}/chunks/999999999",
        f"/api/documents/1/chunks/{2**70}",
    ):
        response = client.get(path, **bearer(caller.raw_key))
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_throttling_per_key(kb, client, settings):
    rates = dict(settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES") or {})
    rates.update({"search": "2/min"})
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    first, second = ApiKeyFactory(), ApiKeyFactory()
    statuses = [post(client, "/api/search", {"query": "keys"}, first).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert post(client, "/api/search", {"query": "keys"}, first).json()["error"]["code"] == "throttled"
    # Another key has its own budget.
    assert post(client, "/api/search", {"query": "keys"}, second).status_code == 200


def test_search_explains_its_time_and_rerank_tokens_in_the_response_and_the_log(kb, client, genapi):
    caller = ApiKeyFactory()
    response = post(client, "/api/search", {"query": "rotate a signing key"}, caller)
    body = response.json()
    stages = body["timings"]
    assert {"embed", "vector", "fulltext", "fuse", "load", "rerank", "highlight", "total"} <= set(stages)
    assert all(isinstance(v, float) and v >= 0 for v in stages.values())
    assert stages["total"] >= max(stages["vector"], stages["fulltext"], stages["rerank"])
    # Tokens as the provider bills a rerank: the query once per passage sent plus the passages.
    assert body["reranked"] is True and body["rerank_tokens"] > len(body["results"])
    log = QueryLog.objects.get(kind="search")
    assert log.rerank_tokens == body["rerank_tokens"]
    assert set(log.timings) == set(stages) and log.timings["total"] == stages["total"]

    plain = post(client, "/api/search", {"query": "rotate a signing key", "rerank": False}, caller).json()
    assert plain["rerank_tokens"] == 0 and "rerank" not in plain["timings"]


def test_a_repeated_search_reuses_the_cached_rerank(kb, client, genapi):
    caller = ApiKeyFactory()
    first = post(client, "/api/search", {"query": "signing key grace period"}, caller).json()
    reranks = genapi.stats()["requests"].get("rerank", 0)
    second = post(client, "/api/search", {"query": "signing key grace period"}, caller).json()
    assert reranks == 1 and genapi.stats()["requests"].get("rerank", 0) == 1
    assert first["rerank_tokens"] > 0 and second["rerank_tokens"] == 0 and second["reranked"] is True
    assert [r["chunk_id"] for r in second["results"]] == [r["chunk_id"] for r in first["results"]]
    # Another query is another cache entry.
    third = post(client, "/api/search", {"query": "vegetarian lunch"}, caller).json()
    assert third["rerank_tokens"] > 0 and genapi.stats()["requests"]["rerank"] == 2


def test_rerank_tokens_stay_within_the_budget_however_long_the_passages(kb, space, client, genapi, settings):
    """The cost is bounded by the budget, not by the passages: 10x longer passages cost the same."""
    settings.RAG_RERANK_DOCUMENTS, settings.RAG_RERANK_DOCUMENT_TOKENS = 6, 40
    settings.RAG_RERANK_TOKENS_MAX = 250
    filler = "The quarterly report lists office supplies, travel and training budgets in detail. "
    spent = {}
    for repeat in (3, 30):
        slug = f"long-{repeat}"
        DocumentFactory(
            collection=CollectionFactory(slug=slug, is_public=True),
            # distinct passages: identical windows are not sent (nothing to reorder)
            passages=[filler * repeat + f"Hardware tokens for {slug} are rotated, rule {i}." + filler * repeat
                      for i in range(8)],
            space=space,
        )  # fmt: skip
        body = {"query": f"hardware tokens {slug} rotated", "collections": [slug]}
        result = post(client, "/api/search", body, ApiKeyFactory()).json()
        assert result["reranked"] is True
        spent[repeat] = result["rerank_tokens"]
    assert 0 < spent[3] <= 250 and 0 < spent[30] <= 250
    assert spent[30] <= spent[3] * 1.2
    settings.RAG_RERANK_DOCUMENT_TOKENS = settings.RAG_RERANK_TOKENS_MAX = 0  # no cap: cost follows length
    body = {"query": "hardware tokens long-30 rotated again", "collections": ["long-30"]}
    uncapped = post(client, "/api/search", body, ApiKeyFactory()).json()["rerank_tokens"]
    assert uncapped > 5 * spent[30]


def test_best_window_keeps_the_query_words_of_a_long_passage():
    from search.rerank import best_window, query_terms, term_weights
    from search.types import Passage

    text = (
        ("Lorem ipsum dolor sit amet. " * 40)
        + "The grace period for signing keys is seven days. "
        + ("Consectetur adipiscing elit. " * 40)
    )
    passage = Passage(chunk_id=1, document_id=1, collection_id=1, title="t", text=text, page=None,
                      char_start=0, char_end=len(text))  # fmt: skip
    other = Passage(chunk_id=2, document_id=1, collection_id=1, title="t", text="signing", page=None,
                    char_start=0, char_end=7)  # fmt: skip
    weights = term_weights(query_terms("How long is the grace period of signing keys?"), [passage, other])
    window = best_window(text, weights, 200)
    assert len(window) <= 200 + 4 and "grace period for signing keys" in window
    assert window.startswith("… ") and window.endswith(" …")
    assert best_window("short text", weights, 200) == "short text"


def test_ask_reports_its_stages(kb, client, genapi):
    caller = ApiKeyFactory()
    body = post(client, "/api/ask", {"question": QUESTION, "api": "chat"}, caller).json()
    assert {"rewrite", "embed", "vector", "fulltext", "rerank", "answer", "total"} <= set(body["timings"])
    assert body["rerank_tokens"] > 0
    log = QueryLog.objects.get(kind="ask")
    assert log.rerank_tokens == body["rerank_tokens"] and "answer" in log.timings


def test_a_database_outage_is_a_503_to_retry_and_a_clean_error_event(kb, client, monkeypatch):
    """A PostgreSQL restart under a request: a 503 with Retry-After (an `error` event on a stream)."""
    from django.db import OperationalError

    from accounts.authentication import ApiKeyAuthentication

    caller = ApiKeyFactory()

    def down(self, request):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(ApiKeyAuthentication, "authenticate", down)
    response = post(client, "/api/search", {"query": "rotate a signing key"}, caller)
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "unavailable"
    response = post(client, "/api/ask", {"question": QUESTION, "stream": True}, caller,
                    HTTP_ACCEPT="text/event-stream")  # fmt: skip
    assert response.status_code == 503
    assert json.loads(response.content.split(b"data: ", 1)[1])["code"] == "unavailable"


@pytest.mark.django_db(transaction=True)
def test_a_search_request_costs_few_statements_on_its_connection(genapi, client):
    """Outside a test's transaction, as in production: authentication 1, throttle 2 (read, one upsert: no
    COUNT(*) of the cache table), collections 1, the full-text leg in one round trip (BEGIN, plan settings,
    the statement that also reads the lexeme statistics, COMMIT), the page with its highlights 1, the query
    log 1 (its own commit unflushed, set inside the INSERT), the provider usage 1 after the response (BEGIN
    and COMMIT): 9 and 2 BEGIN/COMMIT pairs. The vector leg (with the active space's lookup) runs on its
    thread's own connection. Before session 4: 17 statements besides BEGIN/COMMIT; session 6: 10."""
    space = active_space()
    CollectionFactory(slug="kb", is_public=True)
    DocumentFactory(
        collection=CollectionFactory(slug="kb2", is_public=True),
        passages=["To rotate a signing key, run the rotate-keys command.", "Invoices go out monthly."],
        space=space,
    )
    caller = ApiKeyFactory()
    body = {"query": "rotate a signing key", "collections": ["kb", "kb2"], "rerank": False, "top_k": 2}
    # The first request also stamps the key's last use.
    assert post(client, "/api/search", body, caller).status_code == 200
    rag_project.cache._sets_since_count[caches["default"]._table] = 1  # the table's count is not due
    with CaptureQueriesContext(connection) as queries:
        response = post(client, "/api/search", body, caller)
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert results and "<mark>" in results[0]["highlights"][0]
    assert results[0]["vector_rank"] is not None and results[0]["fulltext_rank"] is not None
    statements = [q["sql"] for q in queries.captured_queries]
    work = [sql for sql in statements if sql.strip() not in ("BEGIN", "COMMIT")]
    assert len(work) <= 9 and len(statements) <= 13, "\n".join(statements)
    assert not any("COUNT(*)" in sql for sql in statements)
    assert not any("ingestion_embeddingspace" in sql or "<=>" in sql for sql in statements)
    assert sum("ingestion_collection" in sql for sql in statements) == 1
