"""Batches over files through the client and the stand-in: create, poll, results and errors, list, cancel."""

from __future__ import annotations

import json
import time

import pytest

from genapi import InvalidRequestError
from tests.genapi.test_client import CHAT, EMBED, MESSAGES


def test_batches_over_files(client, tmp_path):
    lines = [
        {
            "custom_id": "e1",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": EMBED, "input": ["hi"]},
        },
        {
            "custom_id": "c1",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": CHAT, "messages": MESSAGES},
        },
        {
            "custom_id": "bad",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "nope", "input": ["x"]},
        },
    ]
    src = tmp_path / "batch-1.jsonl"
    src.write_text("".join(json.dumps(line) + "\n" for line in lines))
    batch = client.batches_create(input_file_id=src.as_uri(), endpoint="/v1/embeddings")
    # The stand-in works in the background: on a quiet machine it may already be finalizing.
    assert batch["object"] == "batch"
    assert batch["status"] in ("validating", "in_progress", "finalizing", "completed")
    deadline = time.monotonic() + 60  # the loop leaves once the batch is done; a loaded machine is slow
    while batch["status"] not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = client.batches_get(batch["id"])
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"completed": 2, "failed": 1, "total": 3}
    out = [json.loads(x) for x in (tmp_path / "batch-1_output.jsonl").read_text().splitlines()]
    err = [json.loads(x) for x in (tmp_path / "batch-1_error.jsonl").read_text().splitlines()]
    assert [o["custom_id"] for o in out] == ["e1", "c1"] and out[0]["response"]["status_code"] == 200
    assert len(out[0]["response"]["body"]["data"][0]["embedding"]) == 384
    assert err[0]["custom_id"] == "bad" and err[0]["response"]["status_code"] == 404
    assert batch["output_file_id"].endswith("batch-1_output.jsonl")
    listed = client.batches_list(limit=100)
    assert batch["id"] in [b["id"] for b in listed["data"]]
    assert client.batches_cancel(batch["id"])["status"] == "completed"  # nothing left to cancel
    with pytest.raises(InvalidRequestError):
        client.batches_get("does-not-exist")


def test_batch_with_missing_input_fails(client, tmp_path):
    batch = client.batches_create(
        input_file_id=(tmp_path / "missing.jsonl").as_uri(), endpoint="/v1/embeddings"
    )
    deadline = time.monotonic() + 60
    while batch["status"] not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = client.batches_get(batch["id"])
    assert batch["status"] == "failed" and batch["errors"]["data"][0]["code"] == "input_unreadable"
