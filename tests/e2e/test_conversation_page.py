"""Conversations and feedback on the search page, in a real browser against the live stack: a follow-up is
asked in the same thread (the earlier turn moves up, the rewritten query is shown), the thread survives a
reload, a new conversation starts empty, and thumbs up/down with the expected passage reach the database."""

from __future__ import annotations

import pytest

from search.models import Conversation, Feedback
from tests.e2e.test_search_page import ask, kb, sign_in  # noqa: F401 - the fixture and helpers

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FIRST = "How often are signing keys rotated?"
FOLLOW_UP = "Who does it?"


def test_a_follow_up_continues_the_thread_and_survives_a_reload(page, live_server, kb):  # noqa: F811
    sign_in(page, live_server, "reader")
    ask(page, FIRST, "Security")
    assert page.locator("#thread-section").is_hidden()
    ask(page, FOLLOW_UP)

    # The first turn moved up into the thread; the follow-up was searched with its words.
    thread = page.locator("#thread > li")
    assert thread.count() == 1 and FIRST in thread.first.inner_text()
    rewrite = page.locator("#rewrite .rewrite")
    assert "signing" in rewrite.locator("q").inner_text() and FOLLOW_UP in rewrite.inner_text()
    assert "Security guide" in page.locator("#results").inner_text()

    conversation = Conversation.objects.get(user=kb.reader)
    assert [t.question for t in conversation.turns.order_by("id")] == [FIRST, FOLLOW_UP]
    assert f"c={conversation.pk}" in page.url

    # A reload shows both turns and asks nothing again.
    page.reload()
    page.wait_for_selector("#ask-form[data-ready='true']", state="attached")
    assert page.locator("#thread > li").count() == 2
    assert conversation.turns.count() == 2
    assert "rotat" in page.locator("#thread > li").nth(1).locator(".rewrite").inner_text()

    # The list of conversations links to it; a new conversation starts with an empty thread.
    page.locator("#conversations summary").click()
    assert page.locator("#conversation-list a").first.inner_text() == FIRST
    page.get_by_role("button", name="New conversation").click()
    assert page.locator("#thread-section").is_hidden()
    ask(page, FIRST)
    assert Conversation.objects.filter(user=kb.reader).count() == 2
    assert page.locator("#rewrite .rewrite").count() == 0  # a first question is searched as asked


def test_thumbs_down_with_a_comment_and_the_expected_passage(page, live_server, kb):  # noqa: F811
    sign_in(page, live_server, "reader")
    ask(page, FIRST, "Security")
    feedback = page.locator("#feedback")
    assert feedback.is_visible()
    feedback.get_by_role("button", name="Not helpful").click()
    page.wait_for_selector("#feedback[data-saved='true']")
    saved = Feedback.objects.get()
    assert saved.rating == -1 and saved.user == kb.reader

    expected = page.locator("#feedback-expected option").nth(1)  # the first numbered passage
    page.get_by_label("Comment (optional)").fill("Should say who approves it")
    page.get_by_label("The passage you expected").select_option(value=expected.get_attribute("value"))
    page.evaluate("delete document.getElementById('feedback').dataset.saved")
    feedback.get_by_role("button", name="Send").click()
    page.wait_for_selector("#feedback[data-saved='true']")
    saved.refresh_from_db()
    assert saved.comment == "Should say who approves it"
    assert saved.expected_chunk_id == int(expected.get_attribute("value"))
    assert Feedback.objects.count() == 1  # changed, not added
