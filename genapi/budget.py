"""One provider budget for every process of a deployment: requests/min, tokens/min, concurrent requests and
the provider's "wait" (a 429's `Retry-After` / `x-ratelimit-reset-*`), kept in Redis or PostgreSQL.

A per-process limiter lets N processes send N times the provider's limit (the 429s of BENCHMARKS.md). Here
every process asks one store, atomically, "may I send a request of this many tokens now?". The buckets are
the provider's own (one second of budget, refilled continuously: the stand-in's and the client's algorithm),
so a request the store admits is one the provider admits. Concurrency slots are leases that expire, so a
process that dies mid-request gives its slot back after `lease` seconds. Time is the store's clock, so the
processes' clocks do not matter.

`budget_open(url)` picks the store from the URL: `redis://`/`rediss://`, or `postgresql://`/`postgres://`
(an UNLOGGED table and a function, created on first use). Keys start with a prefix (`GENAPI_BUDGET_PREFIX`)
plus a digest of the provider's base URL: deployments, test sessions and providers never share a budget
unless they share both.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Protocol

log = logging.getLogger("genapi")

# Returned by `admit` when the buckets allow the request but every concurrency slot is taken: poll again.
SLOT_POLL_SECONDS = 0.02


class BudgetStore(Protocol):
    def admit(
        self,
        key: str,
        *,
        rpm: int,
        tpm: int,
        tokens: int,
        concurrency: int,
        holder: str,
        lease: float,
        burst_seconds: float = 1.0,
    ) -> float:
        """Take one request and `tokens` (and a concurrency slot named `holder`) if all are available now;
        else take nothing and return the seconds to wait (a provider pause included)."""

    def release(self, key: str, holder: str) -> None:
        """Give back the concurrency slot `holder`."""

    def pause(self, key: str, seconds: float) -> None:
        """Hold every process's requests for `seconds` (the provider asked us to wait)."""


def budget_key(prefix: str, base_url: str) -> str:
    digest = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:12]
    return f"{prefix}:{digest}"


# -- Redis ---------------------------------------------------------------------------------------------------

# KEYS: the budget hash, the slot sorted set. ARGV: rpm, tpm, tokens, concurrency, holder, lease, burst.
# The hash holds both buckets' levels and stamps and the pause; the set holds slot holders by expiry.
_REDIS_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm, tpm, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local limit, holder, lease, burst = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local v = redis.call('HMGET', KEYS[1], 'rl', 'rt', 'tl', 'tt', 'pause')
local pause = tonumber(v[5]) or 0
if pause > now then return tostring(pause - now) end
local rrate, trate = rpm / 60, tpm / 60
local rcap, tcap = math.max(1, rrate * burst), math.max(1, trate * burst)
local rl = rcap
if v[1] then rl = math.min(rcap, tonumber(v[1]) + (now - tonumber(v[2])) * rrate) end
local tl = tcap
if v[3] then tl = math.min(tcap, tonumber(v[3]) + (now - tonumber(v[4])) * trate) end
local wait = 0
if rl < 1 then wait = (1 - rl) / rrate end
local need = math.min(cost, tcap)
if cost > 0 and tl < need then wait = math.max(wait, (need - tl) / trate) end
if wait > 0 then return tostring(wait) end
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= limit then return 'slot' end
  redis.call('ZADD', KEYS[2], now + lease, holder)
  redis.call('EXPIRE', KEYS[2], math.ceil(lease) + 60)
end
redis.call('HSET', KEYS[1], 'rl', rl - 1, 'rt', now, 'tl', tl - cost, 'tt', now)
redis.call('EXPIRE', KEYS[1], 3600)
return '0'
"""

_REDIS_PAUSE = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local cur = tonumber(redis.call('HGET', KEYS[1], 'pause')) or 0
if until_ > cur then redis.call('HSET', KEYS[1], 'pause', until_) end
redis.call('EXPIRE', KEYS[1], 3600)
return 1
"""


class RedisBudget:
    def __init__(self, url: str):
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._admit = self._redis.register_script(_REDIS_ADMIT)
        self._pause = self._redis.register_script(_REDIS_PAUSE)

    def admit(self, key, *, rpm, tpm, tokens, concurrency, holder, lease, burst_seconds=1.0) -> float:
        answer = self._admit(
            keys=[key, f"{key}:slots"],
            args=[rpm, tpm, tokens, concurrency, holder, lease, burst_seconds],
        )
        answer = answer.decode() if isinstance(answer, bytes) else str(answer)
        return SLOT_POLL_SECONDS if answer == "slot" else float(answer)

    def release(self, key: str, holder: str) -> None:
        self._redis.zrem(f"{key}:slots", holder)

    def pause(self, key: str, seconds: float) -> None:
        self._pause(keys=[key], args=[seconds])

    def close(self) -> None:
        self._redis.close()


# -- PostgreSQL ----------------------------------------------------------------------------------------------

_PG_SCHEMA = """
CREATE UNLOGGED TABLE IF NOT EXISTS genapi_budget (
    key text PRIMARY KEY,
    req_level float8 NOT NULL, req_stamp float8 NOT NULL,
    tok_level float8 NOT NULL, tok_stamp float8 NOT NULL,
    pause_until float8 NOT NULL DEFAULT 0
);
CREATE UNLOGGED TABLE IF NOT EXISTS genapi_budget_slot (
    key text NOT NULL, holder text NOT NULL, expires float8 NOT NULL, PRIMARY KEY (key, holder)
);
CREATE OR REPLACE FUNCTION genapi_budget_admit(
    p_key text, rpm float8, tpm float8, cost float8, lim integer, p_holder text, lease float8, burst float8
) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    now_s float8;
    rrate float8 := rpm / 60; trate float8 := tpm / 60;
    rcap float8 := greatest(1, rpm / 60 * burst); tcap float8 := greatest(1, tpm / 60 * burst);
    b genapi_budget%ROWTYPE;
    rl float8; tl float8; wait float8 := 0; busy integer;
BEGIN
    -- The row lock serialises the processes' decisions on this budget (held for microseconds).
    SELECT * INTO b FROM genapi_budget WHERE key = p_key FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO genapi_budget VALUES (p_key, rcap, 0, tcap, 0, 0) ON CONFLICT (key) DO NOTHING;
        SELECT * INTO b FROM genapi_budget WHERE key = p_key FOR UPDATE;
    END IF;
    -- The clock is read once the row is ours: a caller that waited for the lock must not decide at the
    -- time it started waiting.
    now_s := extract(epoch FROM clock_timestamp());
    IF b.pause_until > now_s THEN RETURN b.pause_until - now_s; END IF;
    rl := least(rcap, b.req_level + (now_s - b.req_stamp) * rrate);
    tl := least(tcap, b.tok_level + (now_s - b.tok_stamp) * trate);
    IF rl < 1 THEN wait := (1 - rl) / rrate; END IF;
    IF cost > 0 AND tl < least(cost, tcap) THEN
        wait := greatest(wait, (least(cost, tcap) - tl) / trate);
    END IF;
    IF wait > 0 THEN RETURN wait; END IF;
    IF lim > 0 THEN
        DELETE FROM genapi_budget_slot WHERE key = p_key AND expires < now_s;
        SELECT count(*) INTO busy FROM genapi_budget_slot WHERE key = p_key;
        IF busy >= lim THEN RETURN -1; END IF;
        INSERT INTO genapi_budget_slot VALUES (p_key, p_holder, now_s + lease);
    END IF;
    UPDATE genapi_budget SET req_level = rl - 1, req_stamp = now_s, tok_level = tl - cost, tok_stamp = now_s
    WHERE key = p_key;
    RETURN 0;
END $$;
CREATE OR REPLACE FUNCTION genapi_budget_pause(p_key text, seconds float8) RETURNS void LANGUAGE sql AS $$
    INSERT INTO genapi_budget VALUES (p_key, 0, 0, 0, 0, extract(epoch FROM clock_timestamp()) + seconds)
    ON CONFLICT (key) DO UPDATE SET pause_until = greatest(genapi_budget.pause_until, EXCLUDED.pause_until);
$$;
"""
_PG_SCHEMA_LOCK = 0x47454E41  # advisory lock: one process creates the objects


class PostgresBudget:
    """Its own autocommit connection (never the caller's transaction: a budget decision must not wait for,
    or be rolled back with, the caller's work), one per process, shared by its threads under a lock."""

    def __init__(self, url: str):
        self._url = url
        self._lock = threading.Lock()
        self._conn = None

    def _connection(self):
        import psycopg

        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            with conn.transaction():
                # Once per connection, serialised: tables if missing, functions at this version.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_SCHEMA_LOCK])
                conn.execute(_PG_SCHEMA)
            self._conn = conn
        return self._conn

    def _call(self, sql: str, params: list):
        import psycopg

        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchone()
            except psycopg.OperationalError:
                # The server restarted or the connection was cut: one reconnect, then the error.
                self._conn = None
                return self._connection().execute(sql, params).fetchone()

    def admit(self, key, *, rpm, tpm, tokens, concurrency, holder, lease, burst_seconds=1.0) -> float:
        (wait,) = self._call(
            "SELECT genapi_budget_admit(%s, %s, %s, %s, %s, %s, %s, %s)",
            [key, rpm, tpm, tokens, concurrency, holder, lease, burst_seconds],
        )
        return SLOT_POLL_SECONDS if wait < 0 else float(wait)

    def release(self, key: str, holder: str) -> None:
        self._call(
            "WITH d AS (DELETE FROM genapi_budget_slot WHERE key = %s AND holder = %s RETURNING 1) "
            "SELECT count(*) FROM d",
            [key, holder],
        )

    def pause(self, key: str, seconds: float) -> None:
        self._call("SELECT genapi_budget_pause(%s, %s)", [key, seconds])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def budget_open(url: str) -> BudgetStore:
    """The store a URL names (see the module docstring)."""
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        return RedisBudget(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresBudget(url)
    raise ValueError(f"GENAPI_BUDGET_URL must be a redis:// or postgresql:// URL, got scheme {scheme!r}")
