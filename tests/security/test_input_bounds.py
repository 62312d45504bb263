"""Every input is bounded with a clear 400 (never a 500, never unbounded work): JSON depth, characters
PostgreSQL cannot store, non-finite numbers, and the OpenAI-compatible endpoint's messages."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from ingestion.models import Document
from rag_project.json_input import MAX_JSON_DEPTH, json_loads_bounded
from search.models import QueryLog
from tests.factories import ApiKeyFactory, CollectionFactory, UserFactory, bearer

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(db, genapi):
    user = UserFactory(username="writer", is_staff=True)
    CollectionFactory(slug="inbox", is_public=True, writer_users=[user])
    raw = ApiKeyFactory(user=user, scopes=["ingest", "search", "ask"]).raw_key
    client = Client(raise_request_exception=False, **bearer(raw))
    client.user = user
    return client


def post(client, path: str, body: str | dict):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(path, data, content_type="application/json")


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


BODIES = {
    "/api/search": lambda extra: {"query": "hello", **extra},
    "/api/ask": lambda extra: {"question": "hello", **extra},
    "/v1/chat/completions": lambda extra: {
        "model": "citable", "messages": [{"role": "user", "content": "hello"}], **extra,
    },
    "/api/documents/bulk": lambda extra: {"collection": "inbox", "documents": [{"text": "hi", **extra}]},
}  # fmt: skip


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_json_is_a_400(api, path, depth):
    body = json.dumps(BODIES[path]({}))
    body = body[:-1] + f', "metadata": {nested(depth)}}}'
    response = post(api, path, body)
    assert response.status_code == 400, (path, depth, response.status_code, response.content[:300])
    assert "nested" in response.content.decode()


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize(
    "value", ["a\u0000b", "\ud800", {"k\u0000": 1}], ids=["nul", "lone-surrogate", "nul-in-key"]
)
def test_unstorable_characters_are_a_400(api, path, value):
    response = post(api, path, BODIES[path]({"metadata": {"note": value}}))
    assert response.status_code == 400, (path, response.status_code, response.content[:300])
    assert Document.objects.count() == 0


@pytest.mark.parametrize("path", list(BODIES))
def test_non_finite_numbers_are_a_400(api, path):
    body = json.dumps(BODIES[path]({}))[:-1] + ', "metadata": {"n": 1e999}}'
    response = post(api, path, body)
    assert response.status_code == 400, (path, response.status_code, response.content[:300])


def test_bounded_loader():
    assert json_loads_bounded(nested(MAX_JSON_DEPTH)) is not None
    for bad in (nested(MAX_JSON_DEPTH + 1), nested(50_000), '"\\u0000"', '["\\udc00"]', "[1e400]", "{"):
        with pytest.raises(ValueError):
            json_loads_bounded(bad)


# -- /v1/chat/completions has /api/ask's bounds ------------------------------------------------------------


def chat(client, messages, **extra):
    return post(client, "/v1/chat/completions", {"model": "citable", "messages": messages, **extra})


def test_chat_question_is_bounded_like_ask(api):
    long_question = "word " * 3500  # 17,500 characters: /api/ask says 400
    assert post(api, "/api/ask", {"question": long_question}).status_code == 400
    response = chat(api, [{"role": "user", "content": long_question}])
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "4000" in response.json()["error"]["message"]
    parts = [{"type": "text", "text": "word " * 1000}] * 4
    assert chat(api, [{"role": "user", "content": parts}]).status_code == 400
    assert QueryLog.objects.count() == 0


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "hi"}] * 201,
        [{"role": "assistant", "content": "x" * 20_001}, {"role": "user", "content": "hi"}],
        [{"role": "user", "content": [{"type": "text", "text": "hi"}] * 51}],
        [{"role": "user", "content": {"nested": "object"}}],
        [{"role": 7, "content": "hi"}],
        [{"role": "user", "content": 12}],
        ["not a message"],
    ],
    ids=["too-many", "long-history", "too-many-parts", "object", "bad-role", "number", "string"],
)
def test_chat_messages_are_bounded_and_typed(api, messages):
    response = chat(api, messages)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_chat_history_passes_on_the_last_turns_only(api, monkeypatch):
    from search import openai_views

    seen = {}

    def compose(question, **kwargs):
        seen.update(kwargs, question=question)
        raise openai_views.genapi.ProviderUnavailableError("stop here")

    monkeypatch.setattr(openai_views.services, "answer_compose", compose)
    turns = []
    for n in range(40):
        turns += [{"role": "user", "content": f"q{n}"}, {"role": "assistant", "content": f"a{n}"}]
    response = chat(api, [*turns, {"role": "user", "content": "last"}])
    assert response.status_code == 503
    assert seen["question"] == "last"
    assert len(seen["history"]) == openai_views.MAX_HISTORY_TURNS
    assert seen["history"][-1] == {"question": "q39", "answer": "a39"}


def test_chat_stream_options_are_typed(api):
    response = chat(api, [{"role": "user", "content": "hi"}], stream=True, stream_options={"x": {"y": [1]}})
    assert response.status_code == 400, response.content[:300]


@pytest.mark.parametrize(
    "url",
    [
        "/api/documents?collection=%00",
        "/api/documents?status=a%00",
        "/api/documents/1/chunks?limit=%00",
        "/api/documents?x%00=1",
    ],
)
def test_nul_in_the_url_is_a_400(api, url):
    response = api.get(url)
    assert response.status_code == 400, (url, response.status_code, response.content[:300])
    assert "NUL" in response.json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
def test_nul_in_the_url_is_a_400_over_a_real_socket(live_server):
    import httpx

    key = ApiKeyFactory(user=UserFactory(is_superuser=True, is_staff=True)).raw_key
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.get(f"{live_server.url}/api/documents", params={"collection": "9\x00"}, headers=headers)
    assert response.status_code == 400, response.text
