"""The citation check: claims found per marker, scored against the cited passage, flagged, dropped; in the
JSON answer, the stream and /v1 (the page has its browser test in tests/e2e/test_citation_check_page.py)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from genapi.local.answer import parse_sources
from search import services
from search.citation_check import citations_check, claims_extract, lexical_score, model_verdicts
from search.citations import citations_parse
from search.types import Passage
from tests.factories import ApiKeyFactory, bearer

pytestmark = pytest.mark.django_db  # the package's fixtures clear the (database) cache

LEAVE = "Full-time employees receive 25 days of annual leave per year. Unused days expire in March."
PARKING = "Staff park on level -2 of the garage. Visitors use the surface lot."
WRONG = "Visitors must wear a badge inside the data centre at all times"


def passage(n: int, text: str) -> Passage:
    return Passage(
        chunk_id=100 + n, document_id=10 + n, collection_id=1, title=f"Doc {n}", text=text, page=None,
        char_start=0, char_end=len(text),
    )  # fmt: skip


def test_claims_are_the_clause_or_sentence_each_marker_follows():
    text = "Employees get 25 days of annual leave [1]. Staff park on level -2 [2][1]. Yes. [2]"
    claims = claims_extract(text, 2)
    assert [(c.n, c.marker) for c in claims] == [(1, 0), (2, 1), (1, 2), (2, 3)]
    assert claims[0].claim == "Employees get 25 days of annual leave"
    # "[2][1]": both markers cite the same words.
    assert claims[1].claim == claims[2].claim == "Staff park on level -2"
    # A marker after the full stop cites the sentence it follows; too short to judge alone, so whole.
    assert claims[3].claim == "Yes."
    # "According to [1], ..." cites the words after it (the clause before is too short).
    assert claims_extract("According to [1], staff park on level -2 of the garage.", 1)[0].claim == (
        "According to , staff park on level -2 of the garage."
    )


def test_lexical_score_separates_a_supporting_passage_from_a_wrong_one():
    claim = "Full-time employees get 25 days of annual leave each year"
    assert lexical_score(claim, LEAVE) >= 0.7
    assert lexical_score(claim, PARKING) < 0.2
    # Numbers weigh double: the same sentence with the wrong number loses more than one word's worth.
    assert lexical_score("Employees receive 30 days of annual leave", LEAVE) < lexical_score(
        "Employees receive 25 days of annual leave", LEAVE
    )
    # Stemming: "receives"/"receive", "employee"/"employees".
    assert lexical_score("An employee receives annual leave", LEAVE) >= 0.9


def test_unsupported_citations_are_flagged_and_can_be_dropped():
    passages = [passage(1, LEAVE), passage(2, PARKING)]
    text = "Employees receive 25 days of annual leave per year [1]. Employees get a company car [2]."
    cleaned, citations = citations_parse(text, passages)
    out, cited, checks = citations_check(
        cleaned, passages, citations, method="lexical", threshold=0.5, drop=False
    )
    assert out == cleaned
    assert [(c.n, c.supported) for c in cited] == [(1, True), (2, False)]
    assert cited[1].score == checks[1].score < 0.5 <= checks[0].score
    assert [c.supported for c in checks] == [True, False] and not any(c.dropped for c in checks)

    cleaned, citations = citations_parse(text, passages)
    out, cited, checks = citations_check(
        cleaned, passages, citations, method="lexical", threshold=0.5, drop=True
    )
    assert out == "Employees receive 25 days of annual leave per year [1]. Employees get a company car."
    assert [c.n for c in cited] == [1]
    assert [c.dropped for c in checks] == [False, True]


def test_off_leaves_the_answer_alone():
    passages = [passage(1, LEAVE)]
    cleaned, citations = citations_parse("Parking is free [1].", passages)
    assert citations_check(cleaned, passages, citations, method="off") == (cleaned, citations, [])
    assert citations[0].supported is None and citations[0].score is None


def test_the_model_verifier_judges_through_the_provider(genapi):
    """The stand-in answers a check request with "k: yes|no" (60% of the claim's words in the passage)."""
    verdicts = model_verdicts(
        [("Employees receive 25 days of annual leave", LEAVE), ("Employees get a company car", PARKING)]
    )
    assert verdicts == {0: True, 1: False}
    passages = [passage(1, LEAVE), passage(2, PARKING)]
    cleaned, citations = citations_parse("Employees receive annual leave [1]. They get a car [2].", passages)
    _, cited, checks = citations_check(
        cleaned, passages, citations, method="model", threshold=0.5, drop=False
    )
    assert [(c.method, c.score, c.supported) for c in checks] == [("model", 1.0, True), ("model", 0.0, False)]


def test_a_failing_verifier_falls_back_to_the_lexical_check(genapi, no_provider_retries):
    genapi.set_knobs(fail_next={"endpoint": "chat/completions", "status": 400, "count": 1})
    passages = [passage(1, LEAVE)]
    cleaned, citations = citations_parse("Employees receive 25 days of annual leave [1].", passages)
    _, cited, checks = citations_check(
        cleaned, passages, citations, method="model", threshold=0.5, drop=False
    )
    assert checks[0].method == "lexical" and cited[0].supported is True


# --- through the API: the provider's answer is replaced by one with a wrong citation -----------------


def _sentence_of_passage_1(messages) -> str:
    sources, _ = parse_sources(messages[-1]["content"])
    text = max(sources[1].splitlines(), key=len)  # the passage's text, without its title and separator
    return text.split(". ")[0].rstrip(".")


@pytest.fixture
def wrong_citation(monkeypatch):
    """The model cites passage 1 correctly, then cites it for a sentence it does not contain."""

    def text_for(messages) -> str:
        return f"{_sentence_of_passage_1(messages)} [1]. {WRONG} [1]."

    def fake_create(api, instructions, messages):
        return text_for(messages), {"input_tokens": 1, "output_tokens": 1}, "fake"

    def fake_stream(api, instructions, messages):
        text = text_for(messages)
        for i in range(0, len(text), 7):
            yield "delta", text[i : i + 7]

    monkeypatch.setattr(services, "completion_create", fake_create)
    monkeypatch.setattr(services, "completion_stream", fake_stream)


def test_the_ask_api_flags_the_wrong_citation_in_json_and_the_stream(kb, wrong_citation):
    client, caller = Client(), ApiKeyFactory()
    body = {"question": "How do I rotate a signing key?"}
    response = client.post(
        "/api/ask", json.dumps(body), content_type="application/json", **bearer(caller.raw_key)
    )
    data = response.json()
    assert response.status_code == 200, data
    [citation] = data["citations"]
    assert citation["supported"] is False and 0 <= citation["score"] < 0.5
    checks = data["citation_checks"]
    assert [(c["n"], c["marker"], c["supported"]) for c in checks] == [(1, 0, True), (1, 1, False)]
    assert checks[1]["claim"] == WRONG
    assert "check" in data["timings"]

    stream = client.post(
        "/api/ask",
        json.dumps({**body, "stream": True}),
        content_type="application/json",
        **bearer(caller.raw_key),
    )
    events = {}
    for block in b"".join(stream.streaming_content).decode().strip().split("\n\n"):
        name, payload = block.split("\n", 1)
        events[name[len("event: ") :]] = json.loads(payload[len("data: ") :])
    assert events["citations"]["citations"][0]["supported"] is False
    assert [c["supported"] for c in events["citations"]["checks"]] == [True, False]
    assert events["done"]["answer"].endswith(f"{WRONG} [1].")


def test_drop_removes_the_wrong_marker_from_json_stream_and_v1(kb, wrong_citation, settings):
    settings.RAG_CITATION_DROP_UNSUPPORTED = True
    client, caller = Client(), ApiKeyFactory()
    body = {"question": "How do I rotate a signing key?"}
    data = client.post(
        "/api/ask", json.dumps(body), content_type="application/json", **bearer(caller.raw_key)
    ).json()
    assert data["answer"].endswith(f"{WRONG}.") and data["answer"].count("[1]") == 1
    # Passage 1 is still cited once, for the sentence it supports: a citation, supported.
    assert data["citations"][0]["supported"] is True
    assert [c["dropped"] for c in data["citation_checks"]] == [False, True]

    stream = client.post(
        "/api/ask",
        json.dumps({**body, "stream": True}),
        content_type="application/json",
        **bearer(caller.raw_key),
    )
    raw = b"".join(stream.streaming_content).decode()
    done = json.loads(raw.split("event: done\ndata: ")[1].split("\n")[0])
    assert done["answer"] == data["answer"]

    v1 = client.post(
        "/v1/chat/completions",
        json.dumps({"model": "citable", "messages": [{"role": "user", "content": body["question"]}]}),
        content_type="application/json",
        **bearer(caller.raw_key),
    ).json()
    assert v1["choices"][0]["message"]["content"] == data["answer"]
    assert v1["citations"][0]["supported"] is True
