"""The OpenAI-compatible endpoint, driven by the official `openai` SDK against a live server, with the
knowledge base ingested through the real pipeline and answers composed by the stand-in over a socket."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from tests.e2e.knowledge_base import knowledge_base_build
from tests.factories import ApiKeyFactory

MARKER = re.compile(r"\[(\d+)\]")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def kb(settings, genapi):
    return knowledge_base_build(settings)


@pytest.fixture
def reader_key(kb):
    return ApiKeyFactory(user=kb.reader).raw_key


def sdk(live_server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=key, max_retries=0, timeout=60)


def markers(text: str) -> set[int]:
    return {int(n) for n in MARKER.findall(text)}


def test_models_list_one_per_readable_collection_plus_all(live_server, kb, reader_key):
    models = sdk(live_server, reader_key).models.list()
    ids = [m.id for m in models.data]
    assert ids[0] == "citable"
    assert set(ids) == {"citable", "citable-handbook", "citable-security"}  # never the unreadable board
    assert all(m.object == "model" and m.owned_by == "citable" for m in models.data)


def test_models_list_follows_a_narrowed_key(live_server, kb):
    key = ApiKeyFactory(user=kb.reader, collections=[kb.handbook_collection]).raw_key
    assert {m.id for m in sdk(live_server, key).models.list().data} == {"citable", "citable-handbook"}


def test_chat_completion_answers_with_markers_matching_the_sources(live_server, kb, reader_key):
    completion = sdk(live_server, reader_key).chat.completions.create(
        model="citable-handbook",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "How many days of annual leave does a full-time employee receive?"},
        ],
    )
    assert completion.object == "chat.completion"
    assert completion.model == "citable-handbook"
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    text = choice.message.content
    citations = completion.model_extra["citations"]
    assert markers(text), text
    assert markers(text) == {c["n"] for c in citations}
    for citation in citations:
        assert citation["document_id"] == kb.handbook.pk
        assert kb.handbook.chunks.filter(pk=citation["chunk_id"]).exists()
        assert citation["url"].startswith(f"{live_server.url}/documents/{kb.handbook.pk}?chunk=")
    assert "twenty-five days" in " ".join(c["snippet"] for c in citations) + text
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_chat_completion_streams_chunks_with_citations_on_the_last(live_server, kb, reader_key):
    stream = sdk(live_server, reader_key).chat.completions.create(
        model="citable",
        messages=[{"role": "user", "content": "How often are the signing keys rotated?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    pieces = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2, "the answer should arrive in several chunks"
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    citations = final.model_extra["citations"]
    assert markers(text) and markers(text) == {c["n"] for c in citations}
    assert {c["document_id"] for c in citations} == {kb.security.pk}
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_a_conversation_is_answered_from_its_last_user_message(live_server, kb, reader_key):
    completion = sdk(live_server, reader_key).chat.completions.create(
        model="citable",
        messages=[
            {"role": "user", "content": "Tell me about the signing keys rotation."},
            {"role": "assistant", "content": "They are rotated regularly [1]."},
            {"role": "user", "content": [{"type": "text", "text": "How often are they rotated?"}]},
        ],
    )
    citations = completion.model_extra["citations"]
    assert citations and {c["document_id"] for c in citations} == {kb.security.pk}


def test_bad_key_is_401_in_openai_error_shape(live_server, kb):
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(live_server, "cit_000000000000_not-a-real-key").models.list()
    assert raised.value.status_code == 401
    body = httpx.post(
        f"{live_server.url}/v1/chat/completions",
        headers={"Authorization": "Bearer cit_nope_nope"},
        json={"model": "citable", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert body.status_code == 401
    error = body.json()["error"]
    assert set(error) >= {"message", "type", "code"} and error["code"] == "invalid_api_key"
    assert httpx.get(f"{live_server.url}/v1/models").status_code == 401  # no key at all


def test_unknown_or_unreadable_model_is_404(live_server, kb, reader_key):
    client = sdk(live_server, reader_key)
    for model in ("gpt-4o", "citable-board", "citable-nope"):
        with pytest.raises(openai.NotFoundError) as raised:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "board minutes?"}]
            )
        assert raised.value.body["code"] == "model_not_found"


def test_key_without_ask_scope_is_refused(live_server, kb):
    key = ApiKeyFactory(user=kb.reader, scopes=["search"]).raw_key
    with pytest.raises(openai.PermissionDeniedError):
        sdk(live_server, key).chat.completions.create(
            model="citable", messages=[{"role": "user", "content": "annual leave?"}]
        )


def test_provider_down_is_503_or_an_error_chunk(live_server, kb, reader_key, genapi, no_provider_retries):
    genapi.set_knobs(error_rate=1.0)
    client = sdk(live_server, reader_key)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(
            model="citable-handbook", messages=[{"role": "user", "content": "How many days of annual leave?"}]
        )
    assert raised.value.status_code == 503
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="citable-handbook",
                messages=[{"role": "user", "content": "How many days of annual leave?"}],
                stream=True,
            )
        )
