"""benchmarks/citation_check.py on the shipped scifact-mini: the fixture is built as documented (good and
bad citations from SciFact's labels, split without overlap) and the figures come out of it."""

from __future__ import annotations

from benchmarks.citation_check import BAD_KINDS, DEFAULT_DATASET, GOOD, best_threshold, fixture, scores_for


def test_the_fixture_and_its_figures():
    splits = fixture(DEFAULT_DATASET)
    tune, report = splits["tune"], splits["report"]
    assert {p.claim_id for p in tune}.isdisjoint({p.claim_id for p in report})
    for pairs in (tune, report):
        kinds = {p.kind for p in pairs}
        assert GOOD in kinds and {"nearest other", "random"} <= kinds <= {GOOD, *BAD_KINDS}
    # A supporting abstract is one SciFact's annotators labelled SUPPORT for that claim.
    good = next(p for p in report if p.kind == GOOD)
    assert good.claim and good.passage
    threshold, figures = best_threshold(tune, scores_for(tune, 2, 0.5))
    assert 0 < threshold < 1 and 0 <= figures["precision"] <= 1 and 0 <= figures["recall"] <= 1
    # The random abstracts are the easy case: a lexical check flags most of them.
    assert figures["kinds"]["random"]["flagged"] > 0.8
