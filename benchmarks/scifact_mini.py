"""Build benchmarks/data/scifact-mini from a full BEIR SciFact folder (how the shipped subset was made).

    python -m benchmarks.scifact_mini --source PATH/TO/scifact [--queries 75] [--documents 400]

Takes the first `--queries` test queries in id order, all their relevant abstracts, and
fills the corpus up to `--documents` with distractors: for each query the abstracts sharing the most words
with it (hard negatives, so the set is not trivially easy), then abstracts in corpus order. Deterministic:
the same source gives byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

WORD = re.compile(r"[a-z0-9]{3,}")
HARD_NEGATIVES_PER_QUERY = 3


def words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, type=Path, help="a BEIR SciFact folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "scifact-mini")
    parser.add_argument("--queries", type=int, default=75)
    parser.add_argument("--documents", type=int, default=400)
    args = parser.parse_args()

    qrels: dict[str, list[str]] = {}
    for line in (args.source / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(query_id, []).append(doc_id)
    chosen = sorted(qrels, key=int)[: args.queries]
    queries = {}
    for line in (args.source / "queries.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["_id"] in chosen:
            queries[row["_id"]] = row
    corpus = [json.loads(line) for line in (args.source / "corpus.jsonl").read_text().splitlines()]
    by_id = {doc["_id"]: doc for doc in corpus}

    keep: list[str] = []
    for query_id in chosen:
        keep += [d for d in qrels[query_id] if d not in keep]
    relevant = set(keep)
    doc_words = {doc["_id"]: words(doc["title"] + " " + doc["text"]) for doc in corpus}
    for query_id in chosen:
        query_words = words(queries[query_id]["text"])
        ranked = sorted(
            (d for d in by_id if d not in relevant and d not in keep),
            key=lambda d: (-len(query_words & doc_words[d]), int(d)),
        )
        keep += ranked[:HARD_NEGATIVES_PER_QUERY]
    for doc in corpus:
        if len(keep) >= args.documents:
            break
        if doc["_id"] not in keep:
            keep.append(doc["_id"])
    kept = set(keep)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "qrels").mkdir(exist_ok=True)
    with open(args.out / "corpus.jsonl", "w") as handle:
        for doc in corpus:  # the source's order
            if doc["_id"] in kept:
                handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    with open(args.out / "queries.jsonl", "w") as handle:
        for query_id in chosen:
            handle.write(json.dumps(queries[query_id], ensure_ascii=False) + "\n")
    with open(args.out / "qrels" / "test.tsv", "w") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for query_id in chosen:
            for doc_id in qrels[query_id]:
                handle.write(f"{query_id}\t{doc_id}\t1\n")
    print(f"{len(chosen)} queries, {len(kept)} documents ({len(relevant)} relevant) -> {args.out}")


if __name__ == "__main__":
    main()
