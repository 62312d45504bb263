"""Ingestion under the provider's limits: the stand-in enforces Scaleway's published Generative APIs limits
(600 requests/min, 1,000,000 tokens/min, 50 concurrent requests) while the SciFact corpus goes through
`POST /api/documents/bulk`. Prints the tokens/min achieved as a fraction of the limit, the 429s the stand-in
sent, the wall time against the time the token limit alone allows, and failed documents.

    python -m benchmarks.ingest_under_limits
    python -m benchmarks.ingest_under_limits --sample 20
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import BenchDatabase, base_parser, machine_info, print_machine, write_json  # noqa: E402
from benchmarks.ingest_throughput import add_stack_arguments, citable_run, corpus_read  # noqa: E402

SCALEWAY_LIMITS = {"rpm": 600, "tpm": 1_000_000, "concurrency": 50}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.split("\n\n")[0])
    add_stack_arguments(parser)
    parser.add_argument("--rpm", type=int, default=SCALEWAY_LIMITS["rpm"])
    parser.add_argument("--tpm", type=int, default=SCALEWAY_LIMITS["tpm"])
    parser.add_argument("--concurrency", type=int, default=SCALEWAY_LIMITS["concurrency"])
    parser.add_argument(
        "--rate-window",
        type=float,
        default=None,
        help="the stand-in's burst allowance in seconds of budget (its default: 1 s, i.e. strictly smoothed)",
    )
    args = parser.parse_args(argv)
    info = machine_info()
    knobs: dict[str, Any] = {
        "rpm": args.rpm,
        "tpm": args.tpm,
        "concurrency": args.concurrency,
        "latency_ms": 0,
    }
    if args.rate_window is not None:
        knobs["rate_window_s"] = args.rate_window
    db = BenchDatabase(args.database_url, args.data_dir)
    db.setup()
    try:
        corpus = corpus_read(args.dataset, args.sample)
        print_machine(info)
        print(f"ingest_under_limits: {len(corpus)} documents; stand-in limits {knobs}")
        # The client keeps its defaults (the same published limits), as a production deployment would.
        citable, _ = citable_run(args, corpus, standin_knobs=knobs)
    finally:
        db.teardown()

    minutes = citable["seconds"] / 60
    tokens = citable["embedding_tokens"]
    tpm_achieved = tokens / minutes if minutes else 0.0
    allowed_s = tokens / args.tpm * 60
    statuses = citable["standin"].get("statuses", {})
    figures = {
        "tokens": tokens,
        "tokens_per_min": round(tpm_achieved),
        "fraction_of_tpm_limit": round(tpm_achieved / args.tpm, 3),
        "requests_429": int(statuses.get("429", 0)),
        "wall_s": citable["seconds"],
        "token_limit_allows_s": round(allowed_s, 1),
        "wall_over_allowed": round(citable["seconds"] / allowed_s, 2) if allowed_s else None,
        "failed_documents": citable["failed"],
    }
    print()
    print(
        f"documents            {citable['documents']} ({citable['ready']} ready, {citable['failed']} failed)"
    )
    print(f"embedding tokens     {tokens:,}")
    print(
        f"tokens/min achieved  {figures['tokens_per_min']:,} = "
        f"{figures['fraction_of_tpm_limit']:.1%} of {args.tpm:,}"
    )
    print(f"429 responses        {figures['requests_429']} (stand-in statuses {statuses})")
    print(
        f"wall time            {citable['seconds']:.1f} s; the token limit allows {allowed_s:.1f} s "
        f"(x{figures['wall_over_allowed']})"
    )
    print(f"documents/s          {citable['documents_per_s']}")
    if citable["failed_examples"]:
        print(f"failures: {citable['failed_examples']}")
    result = {
        "benchmark": "ingest_under_limits",
        "machine": info,
        "limits": knobs,
        "figures": figures,
        "citable": citable,
    }
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
