"""Client configuration, read from the environment (no Django here: the stand-in runs standalone)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

SCALEWAY_API = "https://api.scaleway.ai"


def _num(env: Mapping[str, str], name: str, default: float, cast=float):
    raw = env.get(name)
    if raw is None or str(raw).strip() == "":
        return cast(default)
    try:
        return cast(float(raw)) if cast is int else cast(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _budget_url(raw: str | None) -> str:
    """`process` (or empty) keeps the budget in each process; any other value is a store URL."""
    value = (raw or "").strip()
    return "" if value.lower() in ("", "process", "local") else value


@dataclass(frozen=True)
class GenAPIConfig:
    base_url: str = f"{SCALEWAY_API}/v1"
    api_key: str | None = None
    project_id: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    max_retries: int = 5
    rpm: int = 600
    tpm: int = 1_000_000
    concurrency: int = 50
    embed_batch_size: int = 2048
    embed_token_budget: int = 300_000
    rerank_batch_size: int = 1000
    max_audio_bytes: int = 25 * 1024 * 1024
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    # A provider asking us to wait longer than this is reported at once (RateLimitedError.retry_after) so a
    # task queue can reschedule instead of pinning a worker.
    max_retry_wait: float = 120.0
    # Where the rate budget lives: "" keeps it in this process; a redis:// or postgresql:// URL shares it
    # with every process using the same URL and prefix (genapi.budget). Django settings choose it.
    budget_url: str = ""
    budget_prefix: str = "citable:genapi"
    # The shared budget refills this much below GENAPI_RPM/TPM: requests admitted at the bucket's edge can
    # reach the provider in another order than admitted (milliseconds apart); the margin absorbs that.
    budget_margin: float = 0.03

    def __repr__(self) -> str:  # never print the key (nor the budget URL: it may hold a password)
        key = "set" if self.api_key else "unset"
        return f"GenAPIConfig(base_url={self.base_url!r}, api_key=<{key}>, project_id={self.project_id!r})"

    def with_overrides(self, **changes) -> GenAPIConfig:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> GenAPIConfig:
        env = os.environ if env is None else env
        project_id = (env.get("SCW_PROJECT_ID") or "").strip() or None
        base_url = (env.get("GENAPI_BASE_URL") or "").strip()
        if not base_url:
            base_url = f"{SCALEWAY_API}/{project_id}/v1" if project_id else f"{SCALEWAY_API}/v1"
        values = dict(
            base_url=base_url.rstrip("/"),
            api_key=(env.get("SCW_SECRET_KEY") or "").strip() or None,
            project_id=project_id,
            connect_timeout=_num(env, "GENAPI_CONNECT_TIMEOUT", 5.0),
            read_timeout=_num(env, "GENAPI_READ_TIMEOUT", 120.0),
            max_retries=_num(env, "GENAPI_MAX_RETRIES", 5, int),
            rpm=_num(env, "GENAPI_RPM", 600, int),
            tpm=_num(env, "GENAPI_TPM", 1_000_000, int),
            concurrency=_num(env, "GENAPI_CONCURRENCY", 50, int),
            embed_batch_size=min(_num(env, "GENAPI_EMBED_BATCH_SIZE", 2048, int), 2048),
            # Default: half a second of the token budget per call (at most 300,000). A call larger than
            # what the limiter refills in a second waits for a full bucket and the waits do not overlap:
            # 78 % of the limit sustained with 21,500-token calls against 91.6 % with 8,000 (BENCHMARKS.md).
            embed_token_budget=_num(
                env,
                "GENAPI_EMBED_TOKEN_BUDGET",
                max(1, min(300_000, _num(env, "GENAPI_TPM", 1_000_000, int) // 120)),
                int,
            ),
            max_retry_wait=_num(env, "GENAPI_MAX_RETRY_WAIT", 120.0),
            budget_url=_budget_url(env.get("GENAPI_BUDGET_URL")),
            budget_prefix=(env.get("GENAPI_BUDGET_PREFIX") or "").strip() or "citable:genapi",
            budget_margin=min(0.5, max(0.0, _num(env, "GENAPI_BUDGET_MARGIN", 0.03))),
        )
        values.update(overrides)
        cfg = cls(**values)
        if cfg.max_retries < 0 or cfg.concurrency < 1 or cfg.rpm < 1 or cfg.tpm < 1:
            raise ValueError("GENAPI_MAX_RETRIES must be >= 0 and GENAPI_RPM/TPM/CONCURRENCY >= 1")
        return cfg
