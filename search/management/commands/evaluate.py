"""`manage.py evaluate --dataset DIR`: retrieval quality on a BEIR-layout dataset (nDCG@10, Recall@100,
MRR@10). `manage.py evaluate --from-feedback`: the same metrics on the questions people rated (thumbs up
or down, the passage they expected), judged per document as `search.feedback` explains.

The corpus goes through the real ingestion pipeline into its own collection (`beir-<folder>`), documents
already loaded are skipped (their BEIR id is kept in Document.metadata["beir_id"]), and every query of the
split runs through the real retrieval code, `search.selectors.passages_retrieve`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from rag_project.commands import MigratedCommand
from search.evaluation import (
    beir_collection_slug,
    beir_load,
    passages_to_documents,
    percentile,
    run_evaluate,
)

TOP_K = 100  # Recall@100 needs 100 documents; passages are collapsed to documents afterwards


class Command(MigratedCommand):
    help = "Evaluate retrieval on a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)."

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--dataset", help="BEIR folder, e.g. benchmarks/data/scifact-mini")
        source.add_argument(
            "--from-feedback",
            action="store_true",
            help="judge the questions people rated through the page or /api/feedback, in the collections "
            "they asked in",
        )
        parser.add_argument("--split", default="test")
        parser.add_argument("--mode", choices=("vector", "fulltext", "hybrid"), default="hybrid")
        parser.add_argument(
            "--rerank",
            action=__import__("argparse").BooleanOptionalAction,
            default=False,
            help="send the candidates through the reranker (default: off, first-stage retrieval only)",
        )
        parser.add_argument(
            "--rerank-full",
            action="store_true",
            help="with --rerank: every candidate, whole, no token budget (the reference the budget is "
            "compared with)",
        )
        parser.add_argument("--json", dest="json_out", default=None, help="write the figures to this file")
        parser.add_argument("--limit-queries", type=int, default=None, help="only the first N queries")
        parser.add_argument(
            "--in-process",
            action="store_true",
            help="ingest in this process (task functions called directly) even if a worker may be running",
        )
        parser.add_argument(
            "--ingest-timeout", type=float, default=3600.0, help="seconds to wait for queued documents"
        )
        parser.add_argument(
            "--label", default="", help="free text stored in the JSON (e.g. the embedding engine)"
        )

    def handle(self, *args, **opts):
        if opts["from_feedback"]:
            return self._handle_feedback(opts)
        from search.evaluation import beir_ingest

        directory = Path(opts["dataset"]).expanduser().resolve()
        if not (directory / "corpus.jsonl").exists():
            raise CommandError(f"{directory} has no corpus.jsonl")
        try:
            dataset = beir_load(directory, opts["split"], opts["limit_queries"])
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc

        slug = beir_collection_slug(dataset.name)
        out = self.stdout
        out.write(
            f"dataset {dataset.name} ({len(dataset.corpus)} documents), split {opts['split']} "
            f"({len(dataset.queries)} queries) -> collection {slug}"
        )
        started = time.perf_counter()
        report = beir_ingest(
            dataset, slug, in_process=opts["in_process"], timeout=opts["ingest_timeout"], log=out.write
        )
        ingest_s = time.perf_counter() - started
        out.write(
            f"ingestion: {report.created} new, {report.skipped} already loaded, {report.ready} ready, "
            f"{report.failed} failed, {report.chunks} passages; {report.how} ({ingest_s:.1f} s)"
        )
        if report.failed:
            out.write(self.style.WARNING(f"{report.failed} documents failed; they cannot be retrieved"))
        if report.cancelled:
            # Someone stopped them (an ingest job or document cancelled); re-ingest them to score them.
            out.write(self.style.WARNING(f"{report.cancelled} documents cancelled; they cannot be retrieved"))

        run, latencies, rerank_tokens, errors = self._run(
            dataset.queries, lambda _query_id: [report.collection_id], report.beir_ids, opts
        )
        self._report(
            dataset.name, dataset.qrels, run, latencies, rerank_tokens, errors, opts,
            {"collection": slug, "ingestion": report.as_dict(), "ingest_seconds": round(ingest_s, 1)},
        )  # fmt: skip

    def _handle_feedback(self, opts) -> None:
        from search.feedback import judged_queries_from_feedback

        judged = judged_queries_from_feedback()
        self.stdout.write(
            f"{len(judged.qrels)} judged queries from {judged.feedback_count} feedback ({judged.up} up, "
            f"{judged.down} down, {judged.unscorable} without a relevant document)"
        )
        if not judged.qrels:
            raise CommandError(
                "No feedback names a relevant document yet: a thumbs up on an answer with citations, or "
                "the passage someone expected, makes a judged query."
            )
        queries = {q: judged.queries[q] for q in judged.qrels}
        run, latencies, rerank_tokens, errors = self._run(
            queries, lambda query_id: judged.collection_ids[query_id], None, opts
        )
        self._report(
            "feedback", judged.qrels, run, latencies, rerank_tokens, errors, opts,
            {"feedback": {"count": judged.feedback_count, "up": judged.up, "down": judged.down,
                          "unscorable": judged.unscorable}},
        )  # fmt: skip

    def _run(self, queries, collections_of, ids, opts):
        """Run every query through the real retrieval; documents as `ids[document id]` (or the id)."""
        from search.rerank import RerankBudget
        from search.selectors import passages_retrieve

        candidates = max(TOP_K, settings.RAG_RERANK_CANDIDATES)
        budget = RerankBudget.unbounded(candidates) if opts["rerank_full"] else None
        run: dict[str, list[str]] = {}
        latencies: list[float] = []
        rerank_tokens: list[float] = []
        errors = 0
        for n, (query_id, text) in enumerate(queries.items(), start=1):
            t0 = time.perf_counter()
            try:
                result = passages_retrieve(
                    text,
                    collection_ids=collections_of(query_id),
                    mode=opts["mode"],
                    top_k=TOP_K,
                    candidates=candidates,
                    rerank=opts["rerank"],
                    rerank_budget=budget,
                )
            except Exception as exc:  # noqa: BLE001 - one failing query scores 0; the run goes on
                errors += 1
                self.stderr.write(f"query {query_id} failed: {exc}")
                run[query_id] = []
                continue
            latencies.append(time.perf_counter() - t0)
            if result.reranked and not result.rerank_cached:
                rerank_tokens.append(result.rerank_tokens)
            # The service's order is the answer (after a rerank, scores of reranked and fused passages are
            # on different scales), so documents are ranked by their best passage's position.
            ranked = passages_to_documents((p.document_id, -i) for i, p in enumerate(result.passages))
            if ids is None:
                run[query_id] = [str(d) for d, _ in ranked]
            else:
                run[query_id] = [ids[d] for d, _ in ranked if d in ids]
            if n % 50 == 0:
                self.stdout.write(f"  {n}/{len(queries)} queries")
        return run, latencies, rerank_tokens, errors

    def _report(self, name, qrels, run, latencies, rerank_tokens, errors, opts, extra) -> None:
        out = self.stdout
        scores = run_evaluate(qrels, run)
        ms = [v * 1000 for v in latencies]
        figures = {
            **scores.as_dict(),
            "latency_p50_ms": round(percentile(ms, 50), 1),
            "latency_p95_ms": round(percentile(ms, 95), 1),
            "query_errors": errors,
        }
        if rerank_tokens:
            figures["rerank_tokens_mean"] = round(sum(rerank_tokens) / len(rerank_tokens), 1)
            figures["rerank_tokens_p95"] = round(percentile(rerank_tokens, 95), 1)
            figures["rerank_tokens_max"] = max(rerank_tokens)
        rerank_label = ("rerank full" if opts["rerank_full"] else "rerank") if opts["rerank"] else "no rerank"
        split = "" if opts["from_feedback"] else f"{opts['split']} "
        out.write("")
        out.write(f"{name} {split}· mode {opts['mode']} · {rerank_label} · {scores.queries} queries")
        out.write(f"  nDCG@10     {scores.ndcg_at_10:.4f}")
        out.write(f"  Recall@100  {scores.recall_at_100:.4f}")
        out.write(f"  MRR@10      {scores.mrr_at_10:.4f}")
        out.write(
            f"  latency     p50 {figures['latency_p50_ms']:.1f} ms · p95 {figures['latency_p95_ms']:.1f} ms"
        )
        if rerank_tokens:
            out.write(
                f"  rerank      {figures['rerank_tokens_mean']:.0f} tokens/query mean · "
                f"p95 {figures['rerank_tokens_p95']:.0f} · max {figures['rerank_tokens_max']} "
                f"({len(rerank_tokens)} reranks not answered by the cache)"
            )
        if errors:
            out.write(self.style.WARNING(f"  {errors} queries failed (scored 0)"))

        if opts["json_out"]:
            payload = {
                "dataset": name,
                "split": "" if opts["from_feedback"] else opts["split"],
                **extra,
                "mode": opts["mode"],
                "rerank": opts["rerank"],
                "rerank_full": opts["rerank_full"],
                "label": opts["label"],
                "embedding_model": settings.GENAPI_EMBEDDING_MODEL,
                "genapi_base_url": os.environ.get("GENAPI_BASE_URL", ""),
                "metrics": figures,
                "command": " ".join(sys.argv),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "per_query": scores.per_query,
            }
            Path(opts["json_out"]).write_text(json.dumps(payload, indent=2) + "\n")
            out.write(f"wrote {opts['json_out']}")
