"""The REST endpoints over the real stack: authentication, permissions, JSON and server-sent events."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import timezone

from search.models import QueryLog
from tests.factories import ApiKeyFactory, CollectionFactory, DocumentFactory, bearer

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
    assert set(body) == {"results", "reranked", "mode", "took_ms"}
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
                             "snippet", "url"}  # fmt: skip
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
