"""A tiny BEIR-layout dataset (5 documents, 3 queries) whose answers are lexically unambiguous."""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = [
    (
        "d1",
        "Aspirin and platelets",
        "Low-dose aspirin irreversibly inhibits platelet cyclooxygenase and thromboxane.",
    ),
    (
        "d2",
        "Vitamin D and bone density",
        "Vitamin D supplementation raises serum calcidiol and bone mineral density.",
    ),
    ("d3", "Telomere shortening", "Telomerase activity maintains telomere length in dividing stem cells."),
    ("d4", "Gut microbiota", "Intestinal bacteria ferment dietary fibre into short-chain fatty acids."),
    (
        "d5",
        "Photosynthesis in algae",
        "Chlorophyll absorbs red and blue light to drive carbon fixation in algae.",
    ),
]
QUERIES = [
    ("q1", "aspirin inhibits platelet thromboxane"),
    ("q2", "vitamin D supplementation bone mineral density"),
    ("q3", "telomerase telomere length stem cells"),
    ("q9", "a training query that is not in the test split"),
]
QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 1)]


def write_tiny_beir(directory: Path) -> Path:
    directory = Path(directory)
    (directory / "qrels").mkdir(parents=True, exist_ok=True)
    with open(directory / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for doc_id, title, text in CORPUS:
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text, "metadata": {}}) + "\n")
    with open(directory / "queries.jsonl", "w", encoding="utf-8") as fh:
        for query_id, text in QUERIES:
            fh.write(json.dumps({"_id": query_id, "text": text, "metadata": {}}) + "\n")
    with open(directory / "qrels" / "test.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for query_id, doc_id, score in QRELS:
            fh.write(f"{query_id}\t{doc_id}\t{score}\n")
    return directory
