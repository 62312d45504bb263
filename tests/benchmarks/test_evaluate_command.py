"""`manage.py evaluate` on a tiny BEIR dataset the test writes: real ingestion (in-process), real retrieval
against the stand-in over a socket, metrics printed and written."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command

from ingestion.models import Collection, Document
from tests.benchmarks.beir_tiny import write_tiny_beir

pytestmark = pytest.mark.django_db


def metrics_printed(output: str) -> dict[str, float]:
    found = {}
    for name in ("nDCG@10", "Recall@100", "MRR@10"):
        match = re.search(rf"^\s*{re.escape(name)}\s+([0-9.]+)\s*$", output, re.MULTILINE)
        assert match, f"{name} not printed:\n{output}"
        found[name] = float(match.group(1))
    return found


def evaluate(*args: str) -> str:
    out = StringIO()
    call_command("evaluate", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_evaluate_tiny_dataset_perfect_retrieval_scores_one(genapi, tmp_path):
    dataset = write_tiny_beir(tmp_path / "beir-tiny")
    report = tmp_path / "out.json"
    output = evaluate("--dataset", str(dataset), "--mode", "fulltext", "--json", str(report))

    # Each query names its document's distinctive words: full text finds it first, so every metric is 1.
    assert metrics_printed(output) == {"nDCG@10": 1.0, "Recall@100": 1.0, "MRR@10": 1.0}
    assert "ingested in this process" in output
    assert re.search(r"latency\s+p50 [0-9.]+ ms · p95 [0-9.]+ ms", output)

    collection = Collection.objects.get(slug="beir-tiny")
    docs = Document.objects.filter(collection=collection)
    assert docs.count() == 5
    assert {d.metadata["beir_id"] for d in docs} == {"d1", "d2", "d3", "d4", "d5"}
    assert set(docs.values_list("status", flat=True)) == {"ready"}
    assert docs.get(metadata__beir_id="d1").text.startswith("Aspirin and platelets\n\n")

    data = json.loads(report.read_text())
    assert data["metrics"]["queries"] == 3  # q9 is not in the test split
    assert data["metrics"]["ndcg@10"] == 1.0
    assert data["collection"] == "beir-tiny"
    assert set(data["per_query"]) == {"q1", "q2", "q3"}


def test_evaluate_skips_loaded_documents_and_scores_every_mode(genapi, tmp_path):
    dataset = write_tiny_beir(tmp_path / "beir-tiny")
    evaluate("--dataset", str(dataset), "--mode", "fulltext")
    for mode in ("vector", "hybrid"):
        output = evaluate("--dataset", str(dataset), "--mode", mode)
        assert "0 new, 5 already loaded" in output
        # Each query shares its distinctive words with its one relevant document, so the stand-in's
        # embeddings (and the fusion of both lists) rank that document first, like full text does.
        assert metrics_printed(output) == {"nDCG@10": 1.0, "Recall@100": 1.0, "MRR@10": 1.0}, mode
    assert Document.objects.filter(collection__slug="beir-tiny").count() == 5


def test_evaluate_wrong_qrels_score_zero(genapi, tmp_path):
    dataset = write_tiny_beir(tmp_path / "beir-wrong")
    # Judge documents that do not exist in the corpus: nothing retrieved can be relevant.
    (dataset / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tnope\t1\nq2\tnada\t1\n")
    output = evaluate("--dataset", str(dataset), "--mode", "fulltext")
    assert metrics_printed(output) == {"nDCG@10": 0.0, "Recall@100": 0.0, "MRR@10": 0.0}


def test_evaluate_refuses_a_folder_without_corpus(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="corpus.jsonl"):
        evaluate("--dataset", str(tmp_path))
