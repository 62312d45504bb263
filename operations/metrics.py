"""The service's Prometheus metrics, in multiprocess mode (settings point PROMETHEUS_MULTIPROC_DIR at
RAG_METRICS_DIR before this module loads): each process writes its own file, /metrics sums them.

Only counters and histograms live here: they add up across processes. Values that are a property of
the whole service (documents by state, queue depth) are read at scrape time (`operations.collectors`).
"""

from __future__ import annotations

import os
import socket

from prometheus_client import Counter, Histogram, values

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # One file per process, named by host and pid rather than pid alone: containers sharing the data
    # volume (docker-compose's web and worker) have their own pid namespaces, and pid 7 in both would
    # write the same file. Set before any metric below is created.
    _host = socket.gethostname().replace("_", "-")  # the collector splits file names on "_"
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: f"{_host}-{os.getpid()}")

# Seconds. Asks and ingestion tasks run long; the default buckets stop at 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

http_request_seconds = Histogram(
    "citable_http_request_seconds",
    "Time to answer a request (to the first byte for streamed answers), by route pattern.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
celery_task_seconds = Histogram(
    "citable_celery_task_seconds",
    "Celery task run time, by task name and final state (SUCCESS, FAILURE, RETRY).",
    ["task", "state"],
    buckets=LATENCY_BUCKETS,
)
provider_requests = Counter(
    "citable_provider_requests",
    "HTTP attempts to the model provider, by endpoint, model and outcome (HTTP status, timeout, network).",
    ["endpoint", "model", "outcome"],
)
provider_rate_limited = Counter(
    "citable_provider_rate_limited",
    "Provider answers 429 (rate limited), by endpoint and model.",
    ["endpoint", "model"],
)
provider_call_seconds = Histogram(
    "citable_provider_call_seconds",
    "Successful provider calls, retries included, by endpoint and model.",
    ["endpoint", "model"],
    buckets=LATENCY_BUCKETS,
)
provider_tokens = Counter(
    "citable_provider_tokens",
    "Tokens billed by the provider (reported, or estimated when it does not say), by direction.",
    ["endpoint", "model", "direction"],
)
search_stage_seconds = Histogram(
    "citable_search_stage_seconds",
    "Time per search stage (embed, vector, fulltext, fuse, rerank, answer, ..., total), by kind.",
    ["kind", "stage"],
    buckets=LATENCY_BUCKETS,
)
