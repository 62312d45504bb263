"""Metric definitions checked against values computed by hand (pytrec_eval / BEIR conventions)."""

from __future__ import annotations

import pytest

from search.evaluation import (
    beir_document_text,
    beir_load,
    mrr_at_k,
    ndcg_at_k,
    passages_to_documents,
    percentile,
    recall_at_k,
    run_evaluate,
)

# 1 / log2(3), the discount at rank 2
D2 = 0.6309297535714575


def test_ndcg_binary_hand_computed():
    # relevant b (rank 2) and c (rank 3): DCG = 1/log2(3) + 1/log2(4); ideal = 1 + 1/log2(3)
    judgements = {"b": 1, "c": 1}
    assert ndcg_at_k(["a", "b", "c"], judgements, 10) == pytest.approx((D2 + 0.5) / (1 + D2))
    assert ndcg_at_k(["a", "b", "c"], judgements, 10) == pytest.approx(0.6934264036)


def test_ndcg_perfect_and_empty():
    assert ndcg_at_k(["x", "y"], {"x": 1, "y": 1}, 10) == pytest.approx(1.0)
    assert ndcg_at_k([], {"x": 1}, 10) == 0.0
    assert ndcg_at_k(["a", "b"], {"x": 1}, 10) == 0.0


def test_ndcg_graded_gain_is_the_relevance_not_exponential():
    # trec_eval's ndcg_cut: gain = rel. DCG = 1 + 2/log2(3); ideal = 2 + 1/log2(3)
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10) == pytest.approx((1 + 2 * D2) / (2 + D2))
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10) == pytest.approx(0.8597186999)


def test_ndcg_cut_applies_to_ranking_and_ideal():
    # 12 relevant docs, the system finds them at ranks 11 and 12 only: nothing inside the cut.
    judgements = {f"r{i}": 1 for i in range(12)}
    ranked = [f"n{i}" for i in range(10)] + ["r0", "r1"]
    assert ndcg_at_k(ranked, judgements, 10) == 0.0
    # ideal at k=2 with 12 relevant is 1 + 1/log2(3), not the sum over 12
    assert ndcg_at_k(["r0", "n0"], judgements, 2) == pytest.approx(1 / (1 + D2))


def test_zero_and_negative_judgements_are_not_relevant():
    judgements = {"a": 0, "b": -1, "c": 1}
    assert ndcg_at_k(["a", "b", "c"], judgements, 10) == pytest.approx(0.5)  # 1/log2(4) / 1
    assert recall_at_k(["a", "b"], judgements, 100) == 0.0
    assert mrr_at_k(["a", "b", "c"], judgements, 10) == pytest.approx(1 / 3)


def test_recall_hand_computed():
    judgements = {"b": 1, "c": 1}
    assert recall_at_k(["a", "b", "c"], judgements, 100) == 1.0
    assert recall_at_k(["a", "b", "c"], judgements, 2) == 0.5
    assert recall_at_k(["a"], judgements, 100) == 0.0


def test_mrr_first_relevant_within_cut():
    judgements = {"b": 1, "c": 1}
    assert mrr_at_k(["a", "b", "c"], judgements, 10) == 0.5
    assert mrr_at_k(["c"], judgements, 10) == 1.0
    ranked = [f"n{i}" for i in range(10)] + ["b"]
    assert mrr_at_k(ranked, judgements, 10) == 0.0


def test_run_evaluate_means_over_every_qrels_query():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}, "q3": {"z": 1}}
    run = {"q1": ["a"], "q2": ["a", "b", "c", "b"]}  # q3 returned nothing: counts as 0, duplicates ignored
    scores = run_evaluate(qrels, run)
    assert scores.queries == 3
    assert scores.ndcg_at_10 == pytest.approx((1.0 + 0.6934264036 + 0.0) / 3)
    assert scores.recall_at_100 == pytest.approx((1 + 1 + 0) / 3)
    assert scores.mrr_at_10 == pytest.approx((1 + 0.5 + 0) / 3)
    assert scores.per_query["q3"] == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}


def test_passages_to_documents_keeps_best_score_and_first_seen_order():
    passages = [("d1", 0.9), ("d2", 0.8), ("d1", 0.7), ("d3", 0.8), ("d2", 0.95)]
    assert passages_to_documents(passages) == [("d2", 0.95), ("d1", 0.9), ("d3", 0.8)]
    # equal scores keep the first-seen order
    assert [d for d, _ in passages_to_documents([("x", 1.0), ("y", 1.0), ("x", 1.0)])] == ["x", "y"]


def test_percentile_matches_linear_interpolation():
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile([], 95) == 0.0
    assert percentile([7.0], 99) == 7.0


def test_beir_load_reads_split_and_corpus(tmp_path):
    from tests.benchmarks.beir_tiny import write_tiny_beir

    directory = write_tiny_beir(tmp_path / "beir-tiny")
    ds = beir_load(directory, "test")
    assert ds.name == "beir-tiny"
    assert len(ds.corpus) == 5 and len(ds.queries) == 3 and len(ds.qrels) == 3
    assert ds.qrels["q1"] == {"d1": 1}
    assert beir_document_text(ds.corpus["d1"]).startswith("Aspirin and platelets\n\n")
    assert len(beir_load(directory, "test", limit_queries=2).queries) == 2
