"""How well the citation check flags citations that do not support their sentence (search/citation_check.py).

    python -m benchmarks.citation_check [--dataset benchmarks/data/scifact-mini] [--json out.json]

The fixture is built from SciFact (a BEIR folder whose queries keep SciFact's evidence labels in their
metadata, as the shipped scifact-mini and the BEIR download do). Each claim plays an answer sentence that
cites one abstract:

- good citation: an abstract SciFact's annotators marked as SUPPORTING the claim;
- bad, "contradicts": an abstract marked as CONTRADICTING it (the claim's words, the opposite finding);
- bad, "cited, no evidence": an abstract the claim's source paper cited that holds no evidence for it;
- bad, "nearest other": the abstract most similar to the claim (TF-IDF cosine over the corpus) among
  those it does not cite: the passage a retriever would plausibly have put under the wrong sentence;
- bad, "random": an abstract drawn at random (seeded) among those it does not cite.

The flag is `supported: false`. The threshold, the window and the pair weight are tuned on the train
claims (the most bad citations flagged with at most 10% of the good ones flagged) and reported on the
test claims, which the tuning never sees; with a
folder that has only a test split (scifact-mini), its claims are split in two by id parity instead.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from search import citation_check

DEFAULT_DATASET = Path(__file__).parent / "data" / "scifact-mini"
WORD = re.compile(r"[a-z0-9]{2,}")
GOOD = "supports"
BAD_KINDS = ("contradicts", "cited, no evidence", "nearest other", "random")
WINDOWS = (1, 2, 3, 1000)
PAIR_WEIGHTS = (0.0, 0.5, 1.0)
MAX_FALSE_FLAGS = 0.10  # at most this share of good citations flagged, on the tune split


@dataclass
class Pair:
    claim_id: str
    claim: str
    passage: str
    kind: str  # GOOD or one of BAD_KINDS

    @property
    def bad(self) -> bool:
        return self.kind != GOOD


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _qrels(folder: Path) -> dict[str, dict[str, set[str]]]:
    """{split: {query id: cited doc ids}}."""
    out: dict[str, dict[str, set[str]]] = {}
    for path in sorted((folder / "qrels").glob("*.tsv")):
        rows = out.setdefault(path.stem, {})
        for line in path.read_text().splitlines()[1:]:
            query_id, doc_id, score = line.split("\t")
            if int(score) > 0:
                rows.setdefault(query_id, set()).add(doc_id)
    return out


class _Tfidf:
    """The nearest abstract to a claim by TF-IDF cosine, for the "nearest other" negatives."""

    def __init__(self, docs: dict[str, str]):
        self.ids = list(docs)
        counts = [Counter(WORD.findall(docs[i].lower())) for i in self.ids]
        df = Counter(t for c in counts for t in c)
        self.idf = {t: math.log(len(self.ids) / n) for t, n in df.items()}
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for index, c in enumerate(counts):
            vec = {t: (1 + math.log(n)) * self.idf[t] for t, n in c.items()}
            norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
            for t, v in vec.items():
                self.postings.setdefault(t, []).append((index, v / norm))

    def nearest(self, text: str, exclude: set[str]) -> str | None:
        # Words in more than a twentieth of the abstracts add little to a cosine and most of its cost.
        common = math.log(20)
        query = {t: self.idf[t] for t in set(WORD.findall(text.lower())) if self.idf.get(t, 0.0) > common}
        scores: Counter = Counter()
        for t, w in query.items():
            for index, v in self.postings.get(t, ()):
                scores[index] += w * v
        for index, _ in scores.most_common():
            if self.ids[index] not in exclude:
                return self.ids[index]
        return None


def fixture(folder: Path, seed: int = 13) -> dict[str, list[Pair]]:
    """{"tune": pairs, "report": pairs} built as the module docstring says."""
    corpus = {
        d["_id"]: f"{d.get('title', '')}. {d['text']}".strip(". ") for d in _jsonl(folder / "corpus.jsonl")
    }
    queries = {q["_id"]: q for q in _jsonl(folder / "queries.jsonl")}
    qrels = _qrels(folder)
    tfidf = _Tfidf(corpus)
    rng = random.Random(seed)
    doc_ids = sorted(corpus)
    if "train" in qrels and "test" in qrels:
        splits = {"tune": qrels["train"], "report": qrels["test"]}
    else:
        only = next(iter(qrels.values()))
        splits = {
            "tune": {q: d for q, d in only.items() if int(q) % 2 == 0},
            "report": {q: d for q, d in only.items() if int(q) % 2 == 1},
        }
    out: dict[str, list[Pair]] = {}
    for split, cited_by_claim in splits.items():
        pairs: list[Pair] = []
        for claim_id in sorted(cited_by_claim, key=int):
            query = queries.get(claim_id)
            if query is None:
                continue
            claim, cited = query["text"], cited_by_claim[claim_id]
            evidence = query.get("metadata") or {}
            for doc_id in sorted(cited):
                if doc_id not in corpus:
                    continue
                labels = {e["label"] for e in evidence.get(doc_id, [])}
                kind = GOOD if labels == {"SUPPORT"} else "contradicts" if labels == {"CONTRADICT"} else None
                if not labels:
                    kind = "cited, no evidence"
                if kind:
                    pairs.append(Pair(claim_id, claim, corpus[doc_id], kind))
            if not any(p.claim_id == claim_id and p.kind == GOOD for p in pairs):
                continue  # the negatives below are kept only beside a claim's good citation: balanced
            nearest = tfidf.nearest(claim, cited)
            if nearest:
                pairs.append(Pair(claim_id, claim, corpus[nearest], "nearest other"))
            other = rng.choice(doc_ids)
            while other in cited:
                other = rng.choice(doc_ids)
            pairs.append(Pair(claim_id, claim, corpus[other], "random"))
        out[split] = pairs
    return out


def flag_figures(pairs: list[Pair], scores: list[float], threshold: float) -> dict:
    flagged = [s < threshold for s in scores]
    tp = sum(1 for p, f in zip(pairs, flagged, strict=True) if f and p.bad)
    fp = sum(1 for p, f in zip(pairs, flagged, strict=True) if f and not p.bad)
    fn = sum(1 for p, f in zip(pairs, flagged, strict=True) if not f and p.bad)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    per_kind = {}
    for kind in (GOOD, *BAD_KINDS):
        kind_flags = [f for p, f in zip(pairs, flagged, strict=True) if p.kind == kind]
        if kind_flags:
            per_kind[kind] = {
                "pairs": len(kind_flags),
                "flagged": round(sum(kind_flags) / len(kind_flags), 3),
            }
    return {
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "kinds": per_kind,
    }


# Every configuration scores the same abstracts: tokenise each once (the service's cache holds 512).
citation_check._sentence_terms = lru_cache(maxsize=None)(citation_check._sentence_terms.__wrapped__)


def scores_for(pairs: list[Pair], window: int, pair_weight: float) -> list[float]:
    saved = citation_check.WINDOW_SENTENCES, citation_check.PAIR_WEIGHT
    citation_check.WINDOW_SENTENCES, citation_check.PAIR_WEIGHT = window, pair_weight
    try:
        return [citation_check.lexical_score(p.claim, p.passage) for p in pairs]
    finally:
        citation_check.WINDOW_SENTENCES, citation_check.PAIR_WEIGHT = saved


def best_threshold(pairs: list[Pair], scores: list[float]) -> tuple[float, dict]:
    """The threshold that flags the most bad citations while flagging at most MAX_FALSE_FLAGS of the good
    ones. (Most pairs are bad, so maximising F1 alone would flag nearly everything: a flag a reader
    learns to ignore.)"""
    best = (0.0, {"recall": -1.0})
    for step in range(1, 100):
        threshold = step / 100
        figures = flag_figures(pairs, scores, threshold)
        if figures["kinds"][GOOD]["flagged"] <= MAX_FALSE_FLAGS and figures["recall"] > best[1]["recall"]:
            best = (threshold, figures)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    splits = fixture(args.dataset)
    tune, report = splits["tune"], splits["report"]
    print(f"fixture: {len(tune)} pairs to tune on, {len(report)} to report on ({args.dataset.name})")
    for name, pairs in splits.items():
        kinds = Counter(p.kind for p in pairs)
        print(f"  {name}: " + ", ".join(f"{kinds[k]} {k}" for k in (GOOD, *BAD_KINDS)))
    choice = None
    for window in WINDOWS:
        for pair_weight in PAIR_WEIGHTS:
            threshold, figures = best_threshold(tune, scores_for(tune, window, pair_weight))
            if choice is None or figures["recall"] > choice[3]["recall"]:
                choice = (window, pair_weight, threshold, figures)
    window, pair_weight, threshold, tuned = choice
    print(f"tuned: window {window} sentences, pair weight {pair_weight}, threshold {threshold}")
    print(
        f"  tune:   precision {tuned['precision']}, recall {tuned['recall']}, F1 {tuned['f1']}, "
        f"good flagged {tuned['kinds'][GOOD]['flagged']:.1%}"
    )
    scores = scores_for(report, window, pair_weight)
    figures = flag_figures(report, scores, threshold)
    print(f"  report: precision {figures['precision']}, recall {figures['recall']}, F1 {figures['f1']}")
    for kind, row in figures["kinds"].items():
        print(f"    {kind:>20}: {row['pairs']:4d} pairs, flagged {row['flagged']:.1%}")
    # Without the contradictions, which a lexical check cannot see by design.
    lexical = [(p, s) for p, s in zip(report, scores, strict=True) if p.kind != "contradicts"]
    no_contra = flag_figures([p for p, _ in lexical], [s for _, s in lexical], threshold)
    print(
        f"  report without 'contradicts': precision {no_contra['precision']}, recall {no_contra['recall']}, "
        f"F1 {no_contra['f1']}"
    )
    if args.json:
        result = {
            "dataset": str(args.dataset.name),
            "window": window,
            "pair_weight": pair_weight,
            "threshold": threshold,
            "tune": tuned,
            "report": figures,
            "report_without_contradicts": no_contra,
        }
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
