"""The page's text shaping (search.page_text) and the cited-passage fragment the search page opens.

The reflow runs over stored, user-controlled text on every document view, so besides its rules it is held
to linear cost: each hostile shape is timed at two sizes and the larger may cost at most 30x for 10x the
input (a quadratic regex costs about 100x). Growth, not wall-clock time, so a loaded machine cannot fail it.
"""

from __future__ import annotations

import time
import timeit

import pytest

from search.page_text import MAX_HIGHLIGHT_QUERY_WORDS, Segment, text_highlight, text_reflow
from tests.factories import CollectionFactory, DocumentFactory, UserFactory

MIN_SAMPLE_SECONDS = 0.02
ROUNDS = 7


def _timer(func, arg) -> tuple[timeit.Timer, int]:
    """A timer of this thread's CPU time (waiting for a core while other processes run is not counted)
    and the loop count that makes one sample last MIN_SAMPLE_SECONDS (finding it warms up)."""
    timer = timeit.Timer(lambda: func(arg), timer=time.thread_time)
    loops = 1
    while timer.timeit(loops) < MIN_SAMPLE_SECONDS:
        loops *= 2
    return timer, loops


def growth(func, make, small: int) -> float:
    """How much more one call costs on 10x the input. Samples of both sizes alternate, and each size
    keeps its fastest: a burst of load from other processes slows both sizes alike or is discarded."""
    timers = [_timer(func, make(small)), _timer(func, make(10 * small))]
    best = [float("inf"), float("inf")]
    for _round in range(ROUNDS):
        for index, (timer, loops) in enumerate(timers):
            best[index] = min(best[index], timer.timeit(loops) / loops)
    return best[1] / best[0]


HOSTILE = {
    # Every newline used to rescan all the whitespace after it (24k characters: 6.8 s).
    "space-newline runs": lambda n: "x" + " \n" * n,
    "tab-newline runs": lambda n: "x" + "\t\n" * n,
    "numbered-looking lines": lambda n: "x\n 1" * n,
    "long digit run after a newline": lambda n: "x\n" + "1" * n,
    "long indent after a newline": lambda n: "x\n" + " " * n,
    "blank lines": lambda n: "x" + "\n" * n,
    "prose": lambda n: "Every employee receives leave.\n" * (n // 30 + 1),
}


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_reflow_cost_grows_linearly(shape):
    ratio = growth(text_reflow, HOSTILE[shape], 1000)
    assert ratio < 30, f"{shape}: 10x the text cost {ratio:.0f}x the time"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wrapped\nline", "wrapped line"),
        ("one paragraph.\n\nAnother.", "one paragraph.\n\nAnother."),
        ("intro\n# Heading", "intro\n# Heading"),
        ("intro\n> quote", "intro\n> quote"),
        ("intro\n- item\n* item\n+ item", "intro\n- item\n* item\n+ item"),
        ("intro\n| a | b |", "intro\n| a | b |"),
        ("intro\n1. first\n  2) second", "intro\n1. first\n  2) second"),
        ("in 2024\n12 people came", "in 2024 12 people came"),  # a number alone does not start a list
        ("ends with a newline\n", "ends with a newline "),
    ],
)
def test_reflow_joins_source_wrapping_and_keeps_structure(text, expected):
    assert text_reflow(text) == expected
    assert len(text_reflow(text)) == len(text)  # offsets into the text stay valid


@pytest.mark.django_db
def test_highlight_marks_the_words_the_full_text_search_matches():
    text = "Embedded vectors & <b>keys</b>: the embedding of a key.\nNothing else."
    segments = text_highlight(text, "embeddings key")
    assert "".join(s.text for s in segments) == text  # every character kept, markup stays text
    assert [s.text for s in segments if s.hit] == ["Embedded", "keys", "embedding", "key"]
    assert text_highlight(text, "") == [Segment(text)]
    assert text_highlight(text, "zebra") == [Segment(text)]
    assert text_highlight(text, "the of a") == [Segment(text)]  # stop words only


@pytest.mark.django_db
def test_highlight_looks_at_a_bounded_number_of_query_words():
    """ts_headline compares every text word with every query word; past the cap, words are ignored
    (the alphabetically first lexemes are kept), so a huge question cannot multiply the cost."""
    filler = [f"a{i:03d}z" for i in range(MAX_HIGHLIGHT_QUERY_WORDS)]  # distinct, sorted before "leav"
    assert [s.text for s in text_highlight("annual leave", " ".join(filler[:-1] + ["leave"])) if s.hit] == [
        "leave"
    ]
    assert [s.text for s in text_highlight("annual leave", " ".join(filler + ["leave"])) if s.hit] == []


@pytest.fixture
def passages(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    reader = UserFactory(username="reader", password="pw")
    UserFactory(username="stranger", password="pw")
    collection = CollectionFactory(reader_users=[reader])
    document = DocumentFactory(
        collection=collection,
        passages=[
            "Far before.",
            "Just before,\nwrapped.",
            "Annual leave is\ntwenty-five <days>.",
            "Just after.",
            "x",
            "y",
        ],
    )
    return document, list(document.chunks.order_by("ordinal"))


def test_passage_fragment_marks_the_cited_passage_between_its_neighbours(client, passages):
    document, chunks = passages
    client.login(username="reader", password="pw")
    response = client.get(f"/documents/{document.pk}/passages/{chunks[2].pk}", {"q": "annual leave"})
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        f'<mark class="passage-text passage-text--cited" data-chunk-id="{chunks[2].pk}">'
        '<mark class="hit">Annual</mark> <mark class="hit">leave</mark> is twenty-five &lt;days&gt;.</mark>'
    ) in html
    shown = [i for i, chunk in enumerate(chunks) if f'data-chunk-id="{chunk.pk}"' in html]
    assert shown == [0, 1, 2, 3, 4]  # two passages on each side of the cited one
    assert "Just before, wrapped." in html
    assert html.index("Just before") < html.index("Annual") < html.index("Just after")


def test_passage_fragment_refuses_strangers_signed_out_callers_and_long_queries(client, passages):
    document, chunks = passages
    url = f"/documents/{document.pk}/passages/{chunks[2].pk}"
    assert client.get(url).status_code == 401  # fetched by script: no redirect to the login page
    client.login(username="stranger", password="pw")
    assert client.get(url).status_code == 404
    client.login(username="reader", password="pw")
    assert client.get(f"/documents/{document.pk + 1}/passages/{chunks[2].pk}").status_code == 404
    assert client.get(url, {"q": "x" * 4001}).status_code == 400
    assert client.get(url, {"q": "x" * 4000}).status_code == 200
