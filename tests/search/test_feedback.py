"""Feedback on answers and searches through the API, and `evaluate --from-feedback` scoring it."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from search.feedback import judged_queries_from_feedback
from search.models import Feedback
from tests.factories import ApiKeyFactory, bearer
from tests.search.test_api import post

pytestmark = pytest.mark.django_db

QUESTION = "How do I rotate a signing key?"


def ask(client, caller, question=QUESTION) -> dict:
    response = post(client, "/api/ask", {"question": question}, caller)
    assert response.status_code == 200, response.content
    return response.json()


def test_thumbs_up_then_changed_to_down_with_the_expected_passage(kb, client, genapi):
    caller = ApiKeyFactory()
    answer = ask(client, caller)
    assert answer["query_id"]
    given = post(client, "/api/feedback", {"query_id": answer["query_id"], "rating": "up"}, caller)
    assert given.status_code == 201, given.content
    assert given.json()["rating"] == "up" and given.json()["query"] == QUESTION

    expected = kb["keys"].chunks.get(ordinal=2)
    changed = post(
        client, "/api/feedback",
        {"query_id": answer["query_id"], "rating": "down", "comment": "Wrong step",
         "expected_chunk_id": expected.pk},
        caller,
    )  # fmt: skip
    assert changed.status_code == 200, changed.content
    feedback = Feedback.objects.get()
    assert (feedback.rating, feedback.comment, feedback.expected_chunk_id) == (-1, "Wrong step", expected.pk)
    listed = client.get("/api/feedback", **bearer(caller.raw_key)).json()
    assert listed["count"] == 1 and listed["results"][0]["expected_chunk_id"] == expected.pk


def test_streamed_answers_and_searches_carry_the_query_id_feedback_needs(kb, client, genapi):
    caller = ApiKeyFactory()
    streamed = post(client, "/api/ask", {"question": QUESTION, "stream": True}, caller)
    raw = b"".join(streamed.streaming_content).decode()
    done = json.loads(raw.split("event: done\ndata: ")[1].split("\n")[0])
    search = post(client, "/api/search", {"query": "refunds"}, caller).json()
    for query_id in (done["query_id"], search["query_id"]):
        response = post(client, "/api/feedback", {"query_id": query_id, "rating": "up"}, caller)
        assert response.status_code == 201, response.content
    assert Feedback.objects.count() == 2


def test_feedback_only_on_your_own_answers_and_readable_passages(kb, client, genapi):
    owner = ApiKeyFactory()
    stranger = ApiKeyFactory()
    answer = ask(client, owner)
    not_yours = post(client, "/api/feedback", {"query_id": answer["query_id"], "rating": "up"}, stranger)
    assert not_yours.status_code == 404
    private = kb["salaries"].chunks.get()
    hidden = post(
        client, "/api/feedback",
        {"query_id": answer["query_id"], "rating": "down", "expected_chunk_id": private.pk}, owner,
    )  # fmt: skip
    assert hidden.status_code == 400 and "expected_chunk_id" in hidden.json()["error"]["details"]
    assert (
        post(client, "/api/feedback", {"query_id": answer["query_id"], "rating": "meh"}, owner).status_code
        == 400
    )
    assert Feedback.objects.count() == 0
    ingest_only = ApiKeyFactory(user=owner.user, scopes=["ingest"])
    assert post(client, "/api/feedback", {"query_id": answer["query_id"], "rating": "up"},
                ingest_only).status_code == 403  # fmt: skip


def test_feedback_becomes_judged_queries(kb, client, genapi):
    caller = ApiKeyFactory()
    liked = ask(client, caller)
    cited_docs = {str(c["document_id"]) for c in liked["citations"]}
    assert cited_docs == {str(kb["keys"].pk)}
    post(client, "/api/feedback", {"query_id": liked["query_id"], "rating": "up"}, caller)
    disliked = ask(client, caller, "When is lunch served?")
    expected = kb["lunch"].chunks.get(ordinal=1)
    post(client, "/api/feedback", {"query_id": disliked["query_id"], "rating": "down",
                                   "expected_chunk_id": expected.pk}, caller)  # fmt: skip
    bare_down = ask(client, caller, "When are invoices sent?")
    post(client, "/api/feedback", {"query_id": bare_down["query_id"], "rating": "down"}, caller)

    judged = judged_queries_from_feedback()
    assert (judged.feedback_count, judged.up, judged.down, judged.unscorable) == (3, 1, 2, 1)
    by_text = {judged.queries[q]: grades for q, grades in judged.qrels.items()}
    assert by_text[QUESTION] == {str(kb["keys"].pk): 1}
    lunch_grades = by_text["When is lunch served?"]
    assert lunch_grades[str(kb["lunch"].pk)] == 2
    assert all(grade == 0 for doc, grade in lunch_grades.items() if doc != str(kb["lunch"].pk))


def test_evaluate_from_feedback_reports_the_beir_metrics(kb, client, genapi, tmp_path):
    caller = ApiKeyFactory()
    liked = ask(client, caller)
    post(client, "/api/feedback", {"query_id": liked["query_id"], "rating": "up"}, caller)
    lunch = ask(client, caller, "When is lunch served?")
    expected = kb["lunch"].chunks.get(ordinal=0)
    body = {"query_id": lunch["query_id"], "rating": "down", "expected_chunk_id": expected.pk}
    post(client, "/api/feedback", body, caller)
    out = StringIO()
    report = tmp_path / "feedback.json"
    call_command("evaluate", "--from-feedback", "--mode", "hybrid", "--json", str(report), stdout=out)
    text = out.getvalue()
    assert "2 judged queries from 2 feedback (1 up, 1 down, 0 without a relevant document)" in text
    figures = json.loads(report.read_text())
    # Both judged documents are the top hit of their own question on this tiny knowledge base.
    assert figures["metrics"]["ndcg@10"] == pytest.approx(1.0)
    assert figures["metrics"]["mrr@10"] == pytest.approx(1.0)
    assert figures["metrics"]["queries"] == 2
    assert figures["dataset"] == "feedback"


def test_the_admin_shows_feedback_and_conversations_to_superusers_only(kb, client, genapi, admin_client):
    caller = ApiKeyFactory()
    conversation = post(client, "/api/conversations", {}, caller).json()
    answer = post(
        client, f"/api/conversations/{conversation['id']}/ask", {"question": QUESTION}, caller
    ).json()
    expected = kb["keys"].chunks.get(ordinal=2)
    body = {"query_id": answer["query_id"], "rating": "down", "comment": "Stale step",
            "expected_chunk_id": expected.pk}  # fmt: skip
    post(client, "/api/feedback", body, caller)
    listing = admin_client.get("/admin/search/feedback/")
    assert listing.status_code == 200
    assert b"Stale step" in listing.content and b"Key management #2" in listing.content
    detail = admin_client.get(f"/admin/search/conversation/{conversation['id']}/change/")
    assert detail.status_code == 200 and QUESTION.encode() in detail.content
    staff = ApiKeyFactory(user__is_staff=True).user
    client.force_login(staff)
    assert client.get("/admin/search/feedback/").status_code == 403
