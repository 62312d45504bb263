"""Batch processing for the stand-in: JSONL in, ``{name}_output.jsonl`` / ``{name}_error.jsonl`` beside it.

Input URLs: ``file:///abs/path.jsonl`` (or a bare absolute path) for local use, ``s3://bucket/key`` or
``https://bucket.host/key`` for S3-compatible storage through boto3 (endpoint ``GENAPI_LOCAL_S3_ENDPOINT``,
credentials from the usual AWS_* variables).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

SUPPORTED_ENDPOINTS = (
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/audio/transcriptions",
    "/v1/rerank",
)


class Storage:
    """Read and write whole objects by URL."""

    def _s3(self):
        try:
            import boto3  # type: ignore[import-not-found]
        except ImportError as exc:
            raise RuntimeError("batches over S3 need boto3 (pip install boto3)") from exc
        return boto3.client("s3", endpoint_url=os.environ.get("GENAPI_LOCAL_S3_ENDPOINT") or None)

    @staticmethod
    def _bucket_key(url: str) -> tuple[str, str]:
        u = urlparse(url)
        if u.scheme == "s3":
            return u.netloc, u.path.lstrip("/")
        host = u.netloc.split(".")[0]  # virtual-hosted style: bucket.s3.region.host/key
        endpoint = os.environ.get("GENAPI_LOCAL_S3_ENDPOINT")
        if endpoint and u.netloc == urlparse(endpoint).netloc:  # path style: endpoint/bucket/key
            bucket, _, key = u.path.lstrip("/").partition("/")
            return bucket, key
        return host, u.path.lstrip("/")

    def read(self, url: str) -> bytes:
        u = urlparse(url)
        if u.scheme in ("", "file"):
            with open(u.path if u.scheme else url, "rb") as fh:
                return fh.read()
        bucket, key = self._bucket_key(url)
        return self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()

    def write(self, url: str, data: bytes) -> None:
        u = urlparse(url)
        if u.scheme in ("", "file"):
            path = u.path if u.scheme else url
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
            return
        bucket, key = self._bucket_key(url)
        self._s3().put_object(Bucket=bucket, Key=key, Body=data)


def sibling(url: str, suffix: str) -> str:
    base = url[: -len(".jsonl")] if url.endswith(".jsonl") else url
    return f"{base}_{suffix}.jsonl"


class BatchStore:
    def __init__(
        self, dispatch: Callable[[str, dict[str, Any]], tuple[int, Any]], storage: Storage | None = None
    ):
        self._dispatch = dispatch
        self._storage = storage or Storage()
        self._batches: dict[str, dict[str, Any]] = {}
        self._cancel: set[str] = set()
        self._lock = threading.Lock()

    def create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url, endpoint = body.get("input_file_id"), body.get("endpoint")
        if not isinstance(url, str) or not url:
            return 400, {"error": {"message": "`input_file_id` is required", "type": "invalid_request_error"}}
        if endpoint not in SUPPORTED_ENDPOINTS:
            return 400, {
                "error": {"message": f"unsupported endpoint {endpoint!r}", "type": "invalid_request_error"}
            }
        now = int(time.time())
        batch = {
            "id": str(uuid.uuid4()),
            "object": "batch",
            "endpoint": endpoint,
            "model": None,
            "input_file_id": url,
            "completion_window": body.get("completion_window") or "24h",
            "status": "validating",
            "created_at": now,
            "expires_at": now + 86400,
            "request_counts": {"completed": 0, "failed": 0, "total": 0},
        }
        with self._lock:
            self._batches[batch["id"]] = batch
        threading.Thread(target=self._run, args=(batch["id"],), daemon=True, name="genapi-batch").start()
        return 200, dict(batch)

    def get(self, batch_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return 404, {
                    "error": {"message": f"batch {batch_id} not found", "type": "invalid_request_error"}
                }
            return 200, json.loads(json.dumps(batch))

    def list(self, after: str | None, limit: int) -> tuple[int, dict[str, Any]]:
        with self._lock:
            items = sorted(self._batches.values(), key=lambda b: (b["created_at"], b["id"]), reverse=True)
            if after:
                ids = [b["id"] for b in items]
                items = items[ids.index(after) + 1 :] if after in ids else []
            page = [json.loads(json.dumps(b)) for b in items[:limit]]
            more = len(items) > limit
        return 200, {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": more,
        }

    def cancel(self, batch_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return 404, {
                    "error": {"message": f"batch {batch_id} not found", "type": "invalid_request_error"}
                }
            if batch["status"] in ("validating", "in_progress", "finalizing"):
                self._cancel.add(batch_id)
                batch["status"] = "cancelling"
                batch["cancelling_at"] = int(time.time())
            return 200, json.loads(json.dumps(batch))

    def _set(self, batch_id: str, **changes: Any) -> None:
        with self._lock:
            self._batches[batch_id].update(changes)

    def _run(self, batch_id: str) -> None:
        with self._lock:
            batch = dict(self._batches[batch_id])
        url = batch["input_file_id"]
        try:
            raw = self._storage.read(url)
        except Exception as exc:  # any storage failure fails the batch, as the provider does
            self._set(
                batch_id,
                status="failed",
                failed_at=int(time.time()),
                errors={"object": "list", "data": [{"code": "input_unreadable", "message": str(exc)[:500]}]},
            )
            return
        lines = [ln for ln in raw.decode("utf-8", "replace").splitlines() if ln.strip()]
        self._set(batch_id, status="in_progress", in_progress_at=int(time.time()))
        self._set(batch_id, request_counts={"completed": 0, "failed": 0, "total": len(lines)})
        outputs, errors = [], []
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        done = failed = 0
        model = None
        for n, line in enumerate(lines, start=1):
            if batch_id in self._cancel:
                break
            custom_id = None
            try:
                req = json.loads(line)
                custom_id = req.get("custom_id")
                body = req.get("body") or {}
                model = model or body.get("model")
                status, result = self._dispatch(req.get("url") or batch["endpoint"], body)
            except Exception as exc:
                status, result = (
                    400,
                    {"error": {"message": f"line {n}: {exc}", "type": "invalid_request_error"}},
                )
            rid = f"batch_req_{uuid.uuid4().hex}"
            record = {
                "id": rid,
                "custom_id": custom_id,
                "response": {"status_code": status, "request_id": rid, "body": result},
            }
            if status == 200:
                record["error"] = None
                outputs.append(record)
                done += 1
                u = result.get("usage") if isinstance(result, dict) else None
                if isinstance(u, dict):
                    for k in usage:
                        usage[k] += int(
                            u.get(k) or u.get({"prompt_tokens": "input_tokens"}.get(k, k), 0) or 0
                        )
            else:
                err = (result or {}).get("error") if isinstance(result, dict) else None
                msg = err.get("message") if isinstance(err, dict) else str(result)
                record["error"] = {"code": str(status), "message": msg, "line": n}
                errors.append(record)
                failed += 1
            self._set(batch_id, request_counts={"completed": done, "failed": failed, "total": len(lines)})
        self._set(batch_id, status="finalizing", finalizing_at=int(time.time()), model=model)
        changes: dict[str, Any] = {"usage": {"type": "tokens", **usage}}
        out_url, err_url = sibling(url, "output"), sibling(url, "error")
        try:
            self._storage.write(out_url, "".join(json.dumps(r) + "\n" for r in outputs).encode())
            changes["output_file_id"] = out_url
            if errors:
                self._storage.write(err_url, "".join(json.dumps(r) + "\n" for r in errors).encode())
                changes["error_file_id"] = err_url
        except Exception as exc:
            self._set(
                batch_id,
                status="failed",
                failed_at=int(time.time()),
                errors={"object": "list", "data": [{"code": "output_unwritable", "message": str(exc)[:500]}]},
            )
            return
        now = int(time.time())
        if batch_id in self._cancel:
            changes.update(status="cancelled", cancelled_at=now)
        else:
            changes.update(status="completed", completed_at=now)
        self._set(batch_id, **changes)
