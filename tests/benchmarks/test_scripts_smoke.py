"""Each benchmark script runs end to end on the tiny BEIR dataset (tests/benchmarks/beir_tiny.py: 5 documents,
3 test queries), as a real subprocess, against this session's test database (`--database-url`): the figures
are printed and written, and the counts they report are the ones this input implies. No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.benchmarks.beir_tiny import CORPUS, QRELS, write_tiny_beir
from tests.conftest import REPO_ROOT, database_url_for_subprocess

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def run_script(name: str, tmp_path, *args: str, timeout: float = 240) -> tuple[str, dict]:
    out_json = tmp_path / f"{name}.json"
    command = [
        sys.executable,
        "-m",
        f"benchmarks.{name}",
        "--database-url",
        database_url_for_subprocess(),
        "--dataset",
        str(write_tiny_beir(tmp_path / "beir-tiny")),
        "--json",
        str(out_json),
        *args,
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()  # the script stops its own web server, worker and stand-in on SIGTERM
        stdout, stderr = process.communicate(timeout=60)
        pytest.fail(f"{name} did not finish in {timeout}s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    assert process.returncode == 0, f"{name} failed:\n{stdout[-4000:]}\n{stderr[-4000:]}"
    assert "cores" in stdout and "RAM" in stdout and "UTC" in stdout  # machine info + date
    return stdout, json.loads(out_json.read_text())


def test_ingest_throughput_smoke(tmp_path):
    stdout, data = run_script("ingest_throughput", tmp_path)
    citable, peer = data["citable"], data["peer"]
    # Five short documents: five one-chunk documents, all ready, embedded in one provider call.
    assert (citable["documents"], citable["ready"], citable["failed"]) == (len(CORPUS), len(CORPUS), 0)
    assert citable["chunks"] == len(CORPUS)
    assert citable["standin"]["requests"] == {"embeddings": 1}
    assert citable["embedding_tokens"] > 0 and citable["documents_per_s"] > 0
    assert citable["peak_rss_web_mib"] > 0 and citable["peak_rss_worker_mib"] > 0
    assert citable["bulk_statuses"] == [202]
    assert "documents/s" in stdout and "LangChain" in stdout
    if "error" in peer:
        assert "pip install -e '.[bench]'" in peer["error"]  # the peer needs the `bench` extra
    else:
        assert peer["documents"] == len(CORPUS) and peer["chunks"] == len(CORPUS)
        # The same peer with Citable's embeddings: its own stand-in, one request for five passages.
        same = data["peer_same_embeddings"]
        assert same["embedder"] == "standin" and same["chunks"] == len(CORPUS)
        assert same["embedding_requests"] == 1
        assert "same stand-in embeddings" in stdout


def test_ingest_under_limits_smoke(tmp_path):
    stdout, data = run_script("ingest_under_limits", tmp_path)
    figures = data["figures"]
    assert figures["failed_documents"] == 0
    assert figures["tokens"] == data["citable"]["embedding_tokens"] and figures["tokens"] > 0
    assert figures["fraction_of_tpm_limit"] == round(figures["tokens_per_min"] / 1_000_000, 3)
    # One embeddings call for five short documents is far inside 600 requests and 1M tokens a minute.
    assert data["citable"]["standin"]["requests"] == {"embeddings": 1}
    assert figures["requests_429"] == 0
    assert data["limits"]["rpm"] == 600 and data["limits"]["tpm"] == 1_000_000
    assert "tokens/min achieved" in stdout


def test_query_latency_smoke(tmp_path):
    plot = tmp_path / "latency.png"
    stdout, data = run_script(
        "query_latency",
        tmp_path,
        "--sample",
        "20",
        "--sizes",
        "200",
        "--requests",
        "8",
        "--ask-requests",
        "3",
        "--warmup",
        "5",
        "--plot",
        str(plot),
    )
    (run,) = data["runs"]
    figures = run["results"]
    for name in ("search no rerank, 1 client", "search rerank, 8 clients", "ask, 1 client"):
        assert figures[name]["requests"] > 0 and figures[name]["errors"] == 0, figures[name]
        assert figures[name]["p50_ms"] <= figures[name]["p95_ms"] <= figures[name]["p99_ms"]
    # The service's own timings come back per stage, and the reranked passes report their tokens.
    assert {"fulltext", "vector", "total"} <= set(figures["search no rerank, 1 client"]["stages_p50_ms"])
    assert figures["search rerank, 1 client"]["stages_p50_ms"]["rerank_tokens"] > 0
    # CPU per request by process tree: the web server and the database both worked for every pass.
    cpu = figures["search no rerank, 8 clients"]["cpu_ms_per_request"]
    assert cpu["web"] > 0 and cpu["postgres"] > 0 and cpu["client"] > 0, cpu
    assert run["setup"]["passages"] == 200 and run["setup"]["index_build_s"] >= 0
    assert "| 200 | search no rerank, 1 client |" in stdout
    try:
        import matplotlib  # noqa: F401 - the `bench` extra draws the plot
    except ImportError:
        assert "no plot: matplotlib is not installed" in stdout
    else:
        assert plot.stat().st_size > 1000
    # --replot draws the table again from the written figures, measuring nothing.
    replotted = subprocess.run(
        [sys.executable, "-m", "benchmarks.query_latency", "--replot", str(tmp_path / "query_latency.json")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "| 200 | search no rerank, 1 client |" in replotted.stdout


def test_hnsw_recall_smoke(tmp_path):
    from search.hnsw import EF_SEARCH_PER_100K

    stdout, data = run_script("hnsw_recall", tmp_path, "--passages", "300", "--queries", "10")
    assert (data["passages"], data["queries"]) == (300, len(QRELS))  # the tiny set has 3 test queries
    # The service's ef_search for a 300-vector index is the scaled default's floor.
    ef_values = {"40", str(EF_SEARCH_PER_100K)}
    assert set(data["results"]) == ef_values
    # Every query's plan is checked, not only the first one's; "used" means by every one of them.
    assert data["plans_checked"] == len(ef_values) * len(QRELS)
    assert data["index_used"] is (data["plans_with_index"] == data["plans_checked"])
    # At 300 rows an HNSW graph searched with ef_search >= 40 finds the exact top 10 (and a table scan is
    # the exact top 10): a check of the comparison itself, not of the index.
    for result in data["results"].values():
        assert (result["recall_at_10"], result["min_query_recall"]) == (1.0, 1.0)
    assert "recall@10" in stdout


def test_load_smoke(tmp_path):
    stdout, data = run_script("load", tmp_path, "--users", "3", "--seconds", "4", "--warmup", "1")
    endpoints = data["endpoints"]
    assert data["users"] == 3 and endpoints["all"]["requests"] > 0
    assert endpoints["all"]["requests"] == sum(endpoints[e]["requests"] for e in ("search", "ask", "upload"))
    assert endpoints["all"]["errors"] == 0, endpoints
    processes = [row["process"] for row in data["memory_mib"]]
    assert any(p.startswith("web/") for p in processes) and any(p.startswith("worker0/") for p in processes)
    assert "error rate" in stdout and "USS" in stdout
