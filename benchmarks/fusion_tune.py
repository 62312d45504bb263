"""Tune hybrid fusion on a BEIR split (SciFact's *train* split: never the split the figures report): each
query's vector and full-text lists are fetched once, then reciprocal-rank fusion is replayed offline over a
grid of k, full-text weight and per-leg depths; nDCG@10 / Recall@100 as `manage.py evaluate` computes them.

Needs the collection loaded by `manage.py evaluate` and the stand-in that embedded it (GENAPI_BASE_URL).

    RAG_DATA_DIR=... GENAPI_BASE_URL=... python -m benchmarks.fusion_tune --dataset DIR --split train
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEPTH = 200
TOP = 100  # documents scored per query, as evaluate
K_GRID = (1, 2, 3, 5, 10, 20, 30, 40, 60, 80, 100, 150)
W_GRID = (0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0)
DEPTH_GRID = (50, 100, 200)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rag_project.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit-queries", type=int, default=None)
    args = parser.parse_args(argv)
    import django

    django.setup()
    from ingestion.models import Chunk, Collection
    from search.evaluation import beir_collection_slug, beir_load, passages_to_documents, run_evaluate
    from search.fulltext import fulltext_candidates
    from search.fusion import rrf_fuse
    from search.selectors import embedding_space_active, query_embed, vector_candidates
    from search.types import SearchFilters

    ds = beir_load(Path(args.dataset), args.split, args.limit_queries)
    collection = Collection.objects.get(slug=beir_collection_slug(ds.name))
    to_beir = {
        c.pk: str(c.document.metadata.get("beir_id"))
        for c in Chunk.objects.filter(document__collection=collection).select_related("document")
    }
    space = embedding_space_active()
    lists: dict[str, tuple[list[int], list[int]]] = {}
    for n, (qid, text) in enumerate(ds.queries.items(), start=1):
        vec = vector_candidates(query_embed(text, space), space, [collection.pk], SearchFilters(), DEPTH)
        ft = fulltext_candidates(text, [collection.pk], SearchFilters(), DEPTH)
        lists[qid] = ([c for c, _ in vec], [c for c, _ in ft])
        if n % 100 == 0:
            print(f"  {n}/{len(ds.queries)} queries fetched", flush=True)

    def score(k: float, w_text: float, depth_v: int, depth_t: int) -> tuple[float, float]:
        run = {}
        for qid, (vec, ft) in lists.items():
            fused = rrf_fuse([vec[:depth_v], ft[:depth_t]], k=k, weights=[1.0, w_text])[:TOP]
            docs = passages_to_documents((to_beir[c], s) for c, s in fused)
            run[qid] = [d for d, _ in docs]
        s = run_evaluate(ds.qrels, run)
        return s.ndcg_at_10, s.recall_at_100

    print(f"{ds.name} {args.split}: {len(lists)} queries")
    for name, only in (("vector", 0), ("fulltext", 1)):
        run = {
            qid: [
                d for d, _ in passages_to_documents((to_beir[c], -r) for r, c in enumerate(pair[only][:TOP]))
            ]
            for qid, pair in lists.items()
        }
        s = run_evaluate(ds.qrels, run)
        print(f"  {name:8} alone: nDCG@10 {s.ndcg_at_10:.4f}  R@100 {s.recall_at_100:.4f}")
    ks, ws, depths = K_GRID, W_GRID, DEPTH_GRID
    grid: dict[tuple[float, float, int, int], tuple[float, float]] = {}
    for k, w, dv, dt in itertools.product(ks, ws, depths, depths):
        grid[(k, w, dv, dt)] = score(k, w, dv, dt)
    base = grid[(60, 1.0, 100, 100)]
    print(f"  default k 60, weights 1/1, depths 100/100: nDCG@10 {base[0]:.4f}  R@100 {base[1]:.4f}")

    def robust(key: tuple[float, float, int, int]) -> float:
        """Mean nDCG@10 over the setting and its grid neighbours in k and weight (same depths): a setting
        that is only good on its own is a lucky one, not a robust one."""
        k, w, dv, dt = key
        ki, wi = ks.index(k), ws.index(w)
        near = [
            grid[(ks[a], ws[b], dv, dt)]
            for a in range(max(0, ki - 1), min(len(ks), ki + 2))
            for b in range(max(0, wi - 1), min(len(ws), wi + 2))
        ]
        return sum(n for n, _ in near) / len(near)

    ranked = sorted(grid, key=lambda key: -robust(key))
    print("  best by the mean over each setting's k/weight neighbourhood:")
    for key in ranked[:12]:
        k, w, dv, dt = key
        ndcg, recall = grid[key]
        print(
            f"  k {k:>3}  fulltext weight {w:<4}  depths {dv}/{dt}: neighbourhood {robust(key):.4f}  "
            f"nDCG@10 {ndcg:.4f}  R@100 {recall:.4f}"
        )
    print("  best single settings:")
    for key in sorted(grid, key=lambda key: -grid[key][0])[:8]:
        k, w, dv, dt = key
        print(f"  k {k:>3}  fulltext weight {w:<4}  depths {dv}/{dt}: nDCG@10 {grid[key][0]:.4f}")
    for dv, dt in ((100, 100), ranked[0][2:]):
        print(f"  nDCG@10 by k (rows) and fulltext weight (columns), depths {dv}/{dt}:")
        print("        " + "".join(f"{w:>8}" for w in ws))
        for k in ks:
            print(f"  {k:>5} " + "".join(f"{grid[(k, w, dv, dt)][0]:8.4f}" for w in ws))


if __name__ == "__main__":
    main()
