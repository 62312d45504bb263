"""Conversations over the real stack: threads kept per user, follow-ups rewritten before retrieval (by the
chat model when configured, by key terms otherwise or when the model fails), JSON and server-sent events."""

from __future__ import annotations

import pytest

from search.models import Conversation, ConversationTurn, QueryLog
from tests.factories import ApiKeyFactory, UserFactory, bearer
from tests.search.test_api import parse_sse, post

pytestmark = pytest.mark.django_db

FIRST = "How often are signing keys rotated?"
FOLLOW_UP = "Who does it?"


def start(client, caller, **body) -> dict:
    response = post(client, "/api/conversations", body, caller)
    assert response.status_code == 201, response.content
    return response.json()


def ask_in(client, caller, conversation_id: int, question: str, **body):
    return post(client, f"/api/conversations/{conversation_id}/ask", {"question": question, **body}, caller)


def test_a_follow_up_is_rewritten_from_the_thread_and_both_turns_are_kept(kb, client, genapi):
    caller = ApiKeyFactory()
    conversation = start(client, caller, collections=["handbook"])
    assert conversation["title"] == "" and conversation["collections"] == ["handbook"]

    first = ask_in(client, caller, conversation["id"], FIRST)
    assert first.status_code == 200, first.content
    first = first.json()
    assert first["rewrite_method"] == "none" and first["search_query"] == FIRST

    second = ask_in(client, caller, conversation["id"], FOLLOW_UP).json()
    # Alone, "Who does it?" has no content word; the thread supplies the previous question's terms.
    assert second["rewrite_method"] == "terms"
    assert second["search_query"].startswith(FOLLOW_UP) and "signing" in second["search_query"]
    planted = kb["keys"].chunks.get(ordinal=0)  # "... rotated every ninety days by the platform team."
    assert second["passages"][0]["chunk_id"] == planted.pk

    detail = client.get(f"/api/conversations/{conversation['id']}", **bearer(caller.raw_key)).json()
    assert detail["title"] == FIRST  # the first question names the thread
    assert [t["question"] for t in detail["turns"]] == [FIRST, FOLLOW_UP]
    assert detail["turns"][1]["search_query"] == second["search_query"]
    assert detail["turns"][1]["answer"] == second["answer"] != ""
    assert detail["turns"][1]["query_id"] == second["query_id"] == QueryLog.objects.latest("id").pk
    assert second["turn_id"] == detail["turns"][1]["id"]
    log = QueryLog.objects.get(pk=second["query_id"])
    assert log.search_query == second["search_query"]


def test_the_chat_model_rewrites_when_configured(kb, client, genapi, settings):
    settings.RAG_QUERY_REWRITE = "model"
    caller = ApiKeyFactory()
    conversation = start(client, caller)
    ask_in(client, caller, conversation["id"], FIRST)
    calls_before = genapi.stats()["requests"].get("chat/completions", 0)
    second = ask_in(client, caller, conversation["id"], FOLLOW_UP).json()
    assert second["rewrite_method"] == "model"
    assert "signing" in second["search_query"] and "rotated" in second["search_query"]
    # One call to rewrite, one to answer.
    assert genapi.stats()["requests"]["chat/completions"] - calls_before == 2


def test_a_failing_rewrite_falls_back_to_key_terms(kb, client, genapi, settings, no_provider_retries):
    settings.RAG_QUERY_REWRITE = "model"
    caller = ApiKeyFactory()
    conversation = start(client, caller)
    ask_in(client, caller, conversation["id"], FIRST)
    genapi.set_knobs(fail_next={"endpoint": "chat/completions", "status": 503})  # the rewrite call
    second = ask_in(client, caller, conversation["id"], FOLLOW_UP)
    assert second.status_code == 200, second.content
    assert second.json()["rewrite_method"] == "terms"
    assert "signing" in second.json()["search_query"]


def test_streamed_turn_is_stored_when_the_stream_ends(kb, client, genapi):
    caller = ApiKeyFactory()
    conversation = start(client, caller)
    ask_in(client, caller, conversation["id"], FIRST)
    response = ask_in(client, caller, conversation["id"], FOLLOW_UP, stream=True)
    events = parse_sse(response)
    names = [name for name, _ in events]
    assert names[:2] == ["turn", "sources"] and names[-1] == "done"
    assert events[1][1]["rewrite_method"] == "terms" and "signing" in events[1][1]["search_query"]
    turn = ConversationTurn.objects.get(pk=events[0][1]["id"])
    text = "".join(data["text"] for name, data in events if name == "delta")
    assert turn.answer == text and text
    assert turn.query_log_id == events[-1][1]["query_id"]
    assert turn.error == ""
    assert [c["chunk_id"] for c in turn.citations] == [
        c["chunk_id"] for c in dict(events)["citations"]["citations"]
    ]


def test_a_failed_turn_is_kept_with_its_error_and_left_out_of_the_history(kb, client, genapi):
    caller = ApiKeyFactory()
    conversation = start(client, caller)
    genapi.set_knobs(fail_next={"endpoint": "chat/completions", "status": 400})
    failed = ask_in(client, caller, conversation["id"], "What do refunds cost?")
    assert failed.status_code == 502
    turn = ConversationTurn.objects.get(conversation_id=conversation["id"])
    assert turn.error.startswith("InvalidRequestError") and turn.answer == ""
    # The failed question is not the history of the next one: it is asked as a first question.
    after = ask_in(client, caller, conversation["id"], FIRST).json()
    assert after["rewrite_method"] == "none"


def test_ask_with_conversation_id_continues_the_thread(kb, client, genapi):
    caller = ApiKeyFactory()
    conversation = start(client, caller)
    post(client, "/api/ask", {"question": FIRST, "conversation_id": conversation["id"]}, caller)
    second = post(client, "/api/ask", {"question": FOLLOW_UP, "conversation_id": conversation["id"]}, caller)
    assert second.json()["rewrite_method"] == "terms"
    assert Conversation.objects.get(pk=conversation["id"]).turns.count() == 2
    both = post(
        client, "/api/ask",
        {"question": FOLLOW_UP, "conversation_id": conversation["id"], "history": [{"question": FIRST}]},
        caller,
    )  # fmt: skip
    assert both.status_code == 400 and "history" in both.json()["error"]["details"]


def test_conversations_are_private_listed_and_deletable(kb, client, genapi):
    owner = ApiKeyFactory()
    second_key_same_user = ApiKeyFactory(user=owner.user)
    stranger = ApiKeyFactory()
    conversation = start(client, owner, title="Keys")
    start(client, owner, title="Billing")

    listed = client.get("/api/conversations", **bearer(second_key_same_user.raw_key)).json()
    assert listed["count"] == 2 and [c["title"] for c in listed["results"]] == ["Billing", "Keys"]
    assert client.get("/api/conversations", **bearer(stranger.raw_key)).json()["count"] == 0

    path = f"/api/conversations/{conversation['id']}"
    assert client.get(path, **bearer(stranger.raw_key)).status_code == 404
    assert ask_in(client, stranger, conversation["id"], FIRST).status_code == 404
    assert post(client, "/api/ask", {"question": FIRST, "conversation_id": conversation["id"]},
                stranger).status_code == 404  # fmt: skip
    assert client.delete(path, **bearer(stranger.raw_key)).status_code == 404

    assert client.delete(path, **bearer(owner.raw_key)).status_code == 204
    assert client.get(path, **bearer(owner.raw_key)).status_code == 404


def test_a_conversation_reads_only_what_the_calling_key_may_read(kb, client, genapi):
    user = UserFactory()
    wide = ApiKeyFactory(user=user)
    narrow = ApiKeyFactory(user=user, collections=[])  # narrowed to nothing
    assert post(client, "/api/conversations", {"collections": ["hr-private"]}, wide).status_code == 403
    conversation = start(client, wide)
    answer = ask_in(client, narrow, conversation["id"], FIRST).json()
    assert answer["found"] is False and answer["citations"] == []


def test_conversations_need_the_ask_scope(kb, client):
    search_only = ApiKeyFactory(scopes=["search"])
    assert post(client, "/api/conversations", {}, search_only).status_code == 403
    assert client.get("/api/conversations", **bearer(search_only.raw_key)).status_code == 403
