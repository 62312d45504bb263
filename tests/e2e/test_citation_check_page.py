"""The page marks a citation the check found unsupported, and shows the final text when unsupported
citations are dropped. The model's answer is replaced by one that cites passage 1 for a sentence it
does not contain (the stand-in is extractive and never cites wrongly); everything else is the live stack."""

from __future__ import annotations

import pytest

from search import services
from tests.e2e.knowledge_base import knowledge_base_build
from tests.e2e.test_search_page import ask, page_problems, sign_in  # noqa: F401 - page_problems: fixture
from tests.search.test_citation_check import WRONG, _sentence_of_passage_1

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUESTION = "How many days of annual leave does a full-time employee receive?"


@pytest.fixture
def kb(settings, genapi):
    return knowledge_base_build(settings)


@pytest.fixture
def wrong_citation(monkeypatch):
    def fake_stream(api, instructions, messages):
        text = f"{_sentence_of_passage_1(messages)} [1]. {WRONG} [1]."
        for i in range(0, len(text), 9):
            yield "delta", text[i : i + 9]

    monkeypatch.setattr(services, "completion_stream", fake_stream)


def test_an_unsupported_citation_is_marked(page, live_server, kb, wrong_citation, page_problems):  # noqa: F811
    sign_in(page, live_server, "reader")
    ask(page, QUESTION, "Handbook")
    buttons = page.locator("#answer button.cite")
    assert buttons.count() == 2
    good, bad = buttons.nth(0), buttons.nth(1)
    assert good.get_attribute("data-supported") is None
    assert "cite--unsupported" in bad.get_attribute("class")
    assert bad.get_attribute("data-supported") == "false"
    assert "may not support this sentence" in bad.get_attribute("aria-label")
    note = page.locator("#citation-check")
    assert note.is_visible() and note.inner_text().startswith("1 citation may not support")
    # Still a citation: it opens its passage, so the reader can judge.
    bad.click()
    page.locator("#passage-panel mark.passage-text--cited").wait_for()
    assert page_problems == []


def test_dropped_citations_leave_the_answer(page, live_server, kb, wrong_citation, settings):
    settings.RAG_CITATION_DROP_UNSUPPORTED = True
    sign_in(page, live_server, "reader")
    ask(page, QUESTION, "Handbook")
    answer = page.locator("#answer")
    assert answer.locator("button.cite").count() == 1
    assert answer.inner_text().endswith(f"{WRONG}.")
    assert page.locator("#citation-check").is_hidden()
