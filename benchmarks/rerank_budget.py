"""Rerank budget: nDCG@10 and rerank tokens per query for budgets of (passages sent, tokens per passage),
against reranking the full candidate list whole, on one BEIR split (tune on SciFact train, confirm on test
with `manage.py evaluate --rerank` and `--rerank --rerank-full`).

Each query's hybrid candidates are retrieved once (the service's code, no rerank); then every budget reranks
them through the stand-in's reranker (lexical unless --rerank-engine says otherwise), with the rerank cache
off, so every figure is a real call.

    python -m benchmarks.rerank_budget --data-dir /work/bench-data/rerank --split train
    python -m benchmarks.rerank_budget --sample 50 --limit-queries 20 --split test
"""

from __future__ import annotations

import itertools
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    BenchDatabase,
    Stack,
    base_parser,
    machine_info,
    print_machine,
    write_json,
)

CANDIDATES = 100  # what `manage.py evaluate` retrieves (top 100 for Recall@100)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit-queries", type=int, default=None)
    parser.add_argument("--documents", default="10,15,20,25,30", help="passages sent, comma-separated")
    parser.add_argument("--document-tokens", default="96,128,160,200", help="tokens per passage")
    parser.add_argument(
        "--budgets", default=None, help="passages x tokens pairs instead of the grid, e.g. 40x96,60x64"
    )
    parser.add_argument("--tokens-max", type=int, default=4000, help="tokens per search (0: none)")
    parser.add_argument("--windows", default="window", help="passage cuts to compare: window,fragments")
    parser.add_argument(
        "--fused-weights", default="0", help="weights of the fused order blended into the rerank's"
    )
    parser.add_argument(
        "--pools", default=None, help="keep the retrieved candidates in this file and reuse them (tuning)"
    )
    parser.add_argument("--blend-k", type=float, default=20.0)
    parser.add_argument("--no-reference", action="store_true", help="skip the full-list rerank")
    parser.add_argument("--embeddings", choices=("hash", "minilm"), default="hash")
    parser.add_argument("--rerank-engine", choices=("lexical", "embedding"), default="lexical")
    args = parser.parse_args(argv)
    info = machine_info()
    from benchmarks.ingest_throughput import UNLIMITED_CLIENT

    os.environ.update(UNLIMITED_CLIENT)
    os.environ["RAG_RERANK_CACHE_URL"] = "dummycache://"  # every figure is a real rerank call
    db = BenchDatabase(args.database_url, args.data_dir)
    db.setup()
    try:
        import search.rerank as rerank_module
        from benchmarks.corpus import scifact_load
        from search.evaluation import beir_load, passages_to_documents, percentile, run_evaluate
        from search.rerank import RerankBudget, passages_rerank
        from search.selectors import passages_retrieve

        print_machine(info)
        standin = {"GENAPI_LOCAL_EMBEDDINGS": args.embeddings}
        with Stack(standin_env=standin, standin_args=["--rerank", args.rerank_engine]) as stack:
            stack.start_standin()
            collection_id = scifact_load(args.dataset, args.sample, log=lambda m: None)
            ds = beir_load(Path(args.dataset), args.split, args.limit_queries)
            from ingestion.models import Document

            beir_ids = dict(
                Document.objects.filter(collection_id=collection_id).values_list("pk", "metadata__beir_id")
            )
            t0 = time.perf_counter()
            pools_file = Path(args.pools) if args.pools else None
            if pools_file and pools_file.exists():
                pools = pickle.loads(pools_file.read_bytes())  # noqa: S301 - our own file, from this script
            else:
                pools = {}
                for query_id, text in ds.queries.items():
                    result = passages_retrieve(
                        text,
                        collection_ids=[collection_id],
                        top_k=CANDIDATES,
                        candidates=CANDIDATES,
                        rerank=False,
                    )
                    pools[query_id] = (text, result.passages)
                if pools_file:
                    pools_file.write_bytes(pickle.dumps(pools))
            print(f"# {len(pools)} queries retrieved in {time.perf_counter() - t0:.0f} s", flush=True)

            budgets: dict[str, tuple[RerankBudget, str, float]] = {
                "no rerank": (RerankBudget(0, 0, 0), "window", 0.0)
            }
            if not args.no_reference:
                budgets[f"full list ({CANDIDATES} whole)"] = (
                    RerankBudget.unbounded(CANDIDATES),
                    "window",
                    0.0,
                )
            sizes = (
                [tuple(int(x) for x in pair.split("x")) for pair in args.budgets.split(",")]
                if args.budgets
                else list(
                    itertools.product(
                        (int(x) for x in args.documents.split(",")),
                        (int(x) for x in args.document_tokens.split(",")),
                    )
                )
            )
            for window, (docs, cap), fused in itertools.product(
                args.windows.split(","), sizes, (float(x) for x in args.fused_weights.split(","))
            ):
                label = f"{docs} x {cap} tokens, {window}" + (f", fused weight {fused}" if fused else "")
                budgets[label] = (RerankBudget(docs, cap, args.tokens_max), window, fused)
            rerank_module.BLEND_K = args.blend_k
            results: dict[str, Any] = {}
            for label, (budget, window, fused) in budgets.items():
                rerank_module.WINDOW = window
                rerank_module.FUSED_WEIGHT = fused
                run: dict[str, list[str]] = {}
                tokens: list[float] = []
                t0 = time.perf_counter()
                for query_id, (text, passages) in pools.items():
                    fresh = [_copy(p) for p in passages]
                    if budget.documents:
                        outcome = passages_rerank(text, fresh, top_k=CANDIDATES, budget=budget)
                        ranked, spent = outcome.passages, outcome.tokens
                    else:
                        ranked, spent = fresh, 0
                    tokens.append(spent)
                    docs = passages_to_documents((p.document_id, -i) for i, p in enumerate(ranked))
                    run[query_id] = [beir_ids[d] for d, _ in docs if d in beir_ids]
                scores = run_evaluate(ds.qrels, run)
                results[label] = {
                    "ndcg_at_10": round(scores.ndcg_at_10, 4),
                    "tokens_mean": round(sum(tokens) / len(tokens), 1),
                    "tokens_p95": round(percentile(tokens, 95), 1),
                    "tokens_max": max(tokens),
                    "seconds": round(time.perf_counter() - t0, 1),
                }
                r = results[label]
                print(
                    f"  {label:52} nDCG@10 {r['ndcg_at_10']:.4f}  tokens mean {r['tokens_mean']:7.0f} "
                    f"p95 {r['tokens_p95']:7.0f} max {r['tokens_max']:6}",
                    flush=True,
                )
    finally:
        db.teardown(stop_server=True)
    payload = {
        "benchmark": "rerank_budget",
        "machine": info,
        "split": args.split,
        "queries": len(pools),
        "embeddings": args.embeddings,
        "rerank_engine": args.rerank_engine,
        "results": results,
    }
    write_json(args.json, payload)
    return payload


def _copy(passage):
    from dataclasses import replace

    return replace(passage)


if __name__ == "__main__":
    main()
