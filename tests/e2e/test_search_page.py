"""The search page in a real browser: sign in, ask, watch the answer stream, open a citation, and the
messages for nothing found, not allowed and provider down. Live server + real ingestion + the stand-in."""

from __future__ import annotations

import re

import pytest

from ingestion.models import Chunk
from search.page_text import text_reflow
from tests.e2e.knowledge_base import PASSWORD, knowledge_base_build

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def kb(settings, genapi):
    return knowledge_base_build(settings)


def sign_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url  # the page requires a signed-in user
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # The page's modules attach their handlers after load; before that Enter is a native form submit.
    page.wait_for_selector("#ask-form[data-ready='true']", state="attached")


def ask(page, question: str, collection: str | None = None) -> None:
    if collection:
        page.get_by_label("Collection").select_option(label=collection)
    page.get_by_label("Question").fill(question)
    page.get_by_label("Question").press("Enter")  # Enter submits
    page.wait_for_selector("#ask-form[data-state='done'], #ask-form[data-state='message']")


@pytest.fixture
def page_problems(page):
    """Console errors, uncaught exceptions and Content-Security-Policy violations of the page."""
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def test_ask_streams_the_answer_and_opens_each_citation(page, live_server, kb, page_problems):
    sign_in(page, live_server, "reader")
    scripts = page.locator("script")
    assert scripts.count() == 1 and scripts.first.get_attribute("type") == "module"
    assert scripts.first.get_attribute("src").startswith("/static/search/")
    options = page.locator("#collection option").all_inner_texts()
    assert "Handbook" in options and "Security" in options and "Board" not in options

    ask(page, "How many days of annual leave does a full-time employee receive?", "Handbook")

    answer = page.locator("#answer")
    assert page.locator("#message").is_hidden()
    assert int(answer.get_attribute("data-deltas")) >= 2, "the answer should arrive as several delta events"
    assert answer.get_attribute("aria-busy") == "false"
    citations = answer.locator("button.cite")
    assert citations.count() >= 1
    assert re.search(r"\[\d+\]", answer.inner_text())

    # The passages under the answer, with the question's words highlighted.
    results = page.locator("#results > li")
    assert results.count() >= 1
    assert page.locator("#results mark").count() >= 1
    assert "Employee handbook" in results.first.inner_text()

    # Open the first citation in place: title, the cited passage marked among its neighbours.
    first = citations.first
    first.click()
    panel = page.locator("#passage-panel")
    cited = panel.locator("mark.passage-text--cited")
    cited.wait_for()
    chunk = Chunk.objects.get(pk=int(cited.get_attribute("data-chunk-id")))
    assert chunk.document_id == kb.handbook.pk
    # As the server reflowed it, with the question's words marked (server-side, as full text stems them).
    assert cited.text_content() == text_reflow(chunk.text)
    assert {w.lower() for w in cited.locator("mark.hit").all_inner_texts()} & {"annual", "leave", "days"}
    assert "Employee handbook" in panel.locator("#passage-title").inner_text()
    assert panel.locator(".passage-text--context").count() >= 1  # neighbours around it
    assert first.get_attribute("aria-expanded") == "true"

    # Escape closes it and gives the focus back to the citation.
    page.keyboard.press("Escape")
    assert panel.is_hidden()
    assert page.evaluate("document.activeElement.classList.contains('cite')")

    # Every citation opens its own passage.
    for index in range(citations.count()):
        citations.nth(index).click()
        panel.locator("mark.passage-text--cited").wait_for()
        page.keyboard.press("Escape")

    # The document viewer shows the cited passage marked and scrolled into view, with the download link.
    citations.first.click()
    panel.locator("mark.passage-text--cited").wait_for()
    panel.get_by_role("link", name="Open in the document").click()
    page.wait_for_url(re.compile(rf"/documents/{kb.handbook.pk}\?chunk=\d+"))
    marked = page.locator(".passage--cited")
    assert marked.count() == 1 and marked.get_attribute("id") == f"chunk-{chunk.pk}"
    assert marked.is_visible() and marked.evaluate(
        "el => { const r = el.getBoundingClientRect(); return r.top < innerHeight && r.bottom > 0; }"
    )
    download_url = page.get_by_role("link", name="Download the original file").get_attribute("href")
    response = page.request.get(f"{live_server.url}{download_url}")
    assert response.status == 200
    assert response.headers["content-disposition"].startswith("attachment")
    assert "twenty-five days of annual leave" in response.text()
    assert page_problems == []


def test_a_shared_link_asks_its_question_again(page, live_server, kb):
    sign_in(page, live_server, "reader")
    page.goto(f"{live_server.url}/?q=How+often+are+signing+keys+rotated%3F&collection=security")
    page.wait_for_selector("#ask-form[data-state='done']")
    assert page.get_by_label("Collection").input_value() == "security"
    assert page.get_by_label("Question").input_value() == "How often are signing keys rotated?"
    assert "Security guide" in page.locator("#results").inner_text()
    assert "Employee handbook" not in page.locator("#results").inner_text()


def test_a_passage_no_longer_readable_says_so_and_keeps_the_cited_text(page, live_server, kb):
    sign_in(page, live_server, "reader")
    ask(page, "How many days of annual leave does a full-time employee receive?", "Handbook")
    kb.handbook_collection.reader_users.remove(kb.reader)
    page.locator("#answer button.cite").first.click()
    body = page.locator("#passage-body")
    body.locator(".field-error").wait_for()
    assert "no longer available" in body.inner_text()
    assert "annual leave" in body.locator(".passage-text--fallback").inner_text()


def test_signed_out_message_when_the_session_ended(page, live_server, kb, browser_context):
    sign_in(page, live_server, "reader")
    browser_context.clear_cookies()
    ask(page, "How many days of annual leave?", "Handbook")
    message = page.locator("#message")
    assert message.get_attribute("data-kind") == "signed-out"
    assert message.get_by_role("link", name="Sign in").get_attribute("href").startswith("/login/?next=")


def test_nothing_found_message(page, live_server, kb, settings):
    # The stand-in's lexical reranker scores a question sharing no word with any passage at zero.
    settings.RAG_RERANK_THRESHOLD = 0.05
    sign_in(page, live_server, "reader")
    ask(page, "zebra xylophone quasar")
    message = page.locator("#message")
    assert message.get_attribute("data-kind") == "not-found"
    assert "Nothing found" in message.inner_text()
    assert page.locator("#results > li").count() == 0


def test_not_allowed_message_for_a_user_without_collections(page, live_server, kb):
    sign_in(page, live_server, "outsider")
    assert "not allowed" in page.locator("#no-collections").inner_text()
    assert page.locator("#collection option").count() == 1  # only "All collections"
    ask(page, "How many days of annual leave?")
    assert page.locator("#message").get_attribute("data-kind") == "not-allowed"
    assert page.locator("#answer").inner_text() == ""


def test_not_allowed_message_when_access_is_revoked_while_the_page_is_open(page, live_server, kb):
    sign_in(page, live_server, "reader")
    kb.handbook_collection.reader_users.remove(kb.reader)  # the API now answers 403 for this collection
    ask(page, "How many days of annual leave?", "Handbook")
    message = page.locator("#message")
    assert message.get_attribute("data-kind") == "not-allowed"
    assert "not allowed" in message.inner_text()


def test_provider_down_message(page, live_server, kb, genapi, no_provider_retries):
    sign_in(page, live_server, "reader")
    genapi.set_knobs(error_rate=1.0)
    ask(page, "How many days of annual leave?", "Handbook")
    message = page.locator("#message")
    assert message.get_attribute("data-kind") == "provider-down"
    assert "unavailable" in message.inner_text()
