"""The search page's ES modules one by one, imported in a real browser on the signed-in page (so under the
page's Content-Security-Policy): what each makes of the payloads the API documents."""

from __future__ import annotations

import json

import pytest

from tests.factories import PASSWORD, CollectionFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def search_page(page, live_server):
    CollectionFactory(reader_users=[UserFactory(username="reader", password=PASSWORD)])
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill("reader")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#question")
    return page


def test_answer_turns_known_markers_into_citation_buttons(search_page):
    parts = search_page.evaluate(
        """async () => {
            const { answerAppend } = await import("/static/search/answer.js");
            const passages = new Map([
                [1, { n: 1, title: "Leave", page: 2 }], [2, { n: 2, title: "Keys", page: null }],
            ]);
            const box = document.createElement("div");
            answerAppend(box, "Twenty-five days [1, 2]. See [3] or [x]", passages);
            answerAppend(box, " and [2].", passages);
            return [...box.childNodes].map((n) => n.nodeName === "BUTTON"
                ? { button: n.textContent, label: n.getAttribute("aria-label") } : n.textContent);
        }"""
    )
    text = "".join(p for p in parts if isinstance(p, str))
    buttons = [p for p in parts if isinstance(p, dict)]
    assert text == "Twenty-five days . See [3] or [x] and ."  # [3] has no passage: it stays text
    assert buttons == [
        {"button": "[1]", "label": "Source 1: Leave, page 2"},
        {"button": "[2]", "label": "Source 2: Keys"},
        {"button": "[2]", "label": "Source 2: Keys"},
    ]


def test_results_take_only_text_and_marks_from_the_server_highlights(search_page):
    result = search_page.evaluate(
        """async () => {
            const { resultsRender } = await import("/static/search/results.js");
            const list = document.createElement("ol");
            const base = { document_id: 1, title: "Leave", page: 3, heading_path: "Handbook › Leave" };
            resultsRender(list, [
                { ...base, n: 1, chunk_id: 10, url: "/documents/1?chunk=10", text: "unused", highlights: [
                    "a &lt;b&gt;x&lt;/b&gt; <mark>leave</mark> &amp; <img src=x>", "<mark>days</mark>",
                ] },
                { ...base, n: 2, chunk_id: 11, url: "/documents/1?chunk=11", text: "Plain text.",
                  highlights: [] },
            ]);
            const [first, second] = list.children;
            return {
                snippet: first.querySelector(".snippet").textContent,
                marks: [...first.querySelectorAll("mark.hit")].map((m) => m.textContent),
                elements: [...first.querySelector(".snippet").querySelectorAll("*")].map((e) => e.nodeName),
                href: first.querySelector("a").getAttribute("href"),
                meta: first.querySelector(".meta").textContent,
                plain: second.querySelector(".snippet--clamped").textContent,
            };
        }"""
    )
    assert result == {
        "snippet": "a <b>x</b> leave &  … days",
        "marks": ["leave", "days"],
        "elements": ["MARK", "MARK"],  # the escaped markup stays text, a raw tag is dropped
        "href": "/documents/1?chunk=10",
        "meta": "page 3 · Handbook › Leave",
        "plain": "Plain text.",
    }


def test_events_are_read_whole_across_network_chunks(search_page):
    events = search_page.evaluate(
        """async () => {
            const { eventsRead } = await import("/static/search/events.js");
            const wire = 'event: delta\\ndata: {"text": "día [1]"}\\n\\n'
                + 'event: done\\ndata: {"found": true}\\n\\n';
            const bytes = new TextEncoder().encode(wire);
            const body = new ReadableStream({
                start(controller) {  // one byte at a time: frames and the two-byte "í" are split everywhere
                    for (const byte of bytes) controller.enqueue(new Uint8Array([byte]));
                    controller.close();
                },
            });
            const out = [];
            for await (const event of eventsRead(new Response(body))) out.push(event);
            return out;
        }"""
    )
    assert events == [
        {"name": "delta", "data": {"text": "día [1]"}},
        {"name": "done", "data": {"found": True}},
    ]


def test_messages_map_statuses_and_stream_codes(search_page):
    kinds = search_page.evaluate(
        """async () => {
            const m = await import("/static/search/messages.js");
            return {
                statuses: [400, 401, 403, 429, 500, 502, 503].map(m.messageKindForStatus),
                codes: ["provider_rate_limited", "provider_unavailable", "provider_error", "internal_error"]
                    .map(m.messageKindForCode),
            };
        }"""
    )
    assert kinds == {
        "statuses": [
            "invalid",
            "signed-out",
            "not-allowed",
            "rate-limited",
            "error",
            "provider-down",
            "provider-down",
        ],
        "codes": ["rate-limited", "provider-down", "provider-down", "error"],
    }


def _ask(page, question: str = "How many days of annual leave?") -> None:
    page.get_by_label("Question").fill(question)
    page.get_by_label("Question").press("Enter")
    page.wait_for_selector("#ask-form[data-state='done'], #ask-form[data-state='message']")


SOURCES = {
    "passages": [
        {
            "n": 1, "chunk_id": 5, "document_id": 2, "collection_id": 1, "title": "Leave",
            "text": "Annual leave.", "page": None, "char_start": 0, "char_end": 13, "ordinal": 0,
            "heading_path": "", "metadata": {},
            "mime_type": "text/plain", "score": 1.0, "fused_score": 1.0, "vector_rank": 1, "fulltext_rank": 1,
            "rerank_score": None, "highlights": ["<mark>Annual</mark> leave."], "url": "/documents/2?chunk=5",
        }
    ],
    "reranked": False,
    "search_query": "annual leave",
}  # fmt: skip


def test_a_stream_cut_before_done_keeps_the_answer_and_says_it_was_interrupted(search_page):
    body = (
        f"event: sources\ndata: {json.dumps(SOURCES)}\n\n"
        'event: delta\ndata: {"text": "Twenty-five days [1]"}\n\n'
    )
    search_page.route(
        "**/api/ask", lambda route: route.fulfill(status=200, content_type="text/event-stream", body=body)
    )
    _ask(search_page)
    message = search_page.locator("#message")
    assert message.get_attribute("data-kind") == "provider-down"
    assert "interrupted" in message.inner_text()
    assert search_page.locator("#answer").inner_text() == "Twenty-five days [1]"
    assert search_page.locator("#answer button.cite").count() == 1


@pytest.mark.parametrize(
    ("status", "code", "kind", "text"),
    [
        (429, "throttled", "rate-limited", "Too many questions"),
        (502, "provider_error", "provider-down", "unavailable"),
        (400, "invalid", "invalid", "The request is invalid."),
        (500, "error", "error", "Something went wrong"),
    ],
)
def test_http_errors_of_ask_show_their_message(search_page, status, code, kind, text):
    error = {"error": {"code": code, "message": "The request is invalid." if status == 400 else "x"}}
    search_page.route("**/api/ask", lambda route: route.fulfill(status=status, json=error))
    _ask(search_page)
    message = search_page.locator("#message")
    assert message.get_attribute("data-kind") == kind
    assert text in message.inner_text()
    assert search_page.locator("#answer-section").is_hidden()
