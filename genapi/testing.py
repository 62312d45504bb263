"""Run the local stand-in from tests: in a background thread (:func:`local_server`) or as a separate process
(:func:`start_subprocess`). Both give a handle with ``base_url``, ``set_knobs``, ``stats`` and friends."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from genapi.local.server import Knobs, StandIn, make_server


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _AdminMixin:
    root: str

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def _admin(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(f"{self.root}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())


class LocalServer(_AdminMixin):
    """The stand-in serving from a daemon thread of this process."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        embeddings: str | None = None,
        rerank: str | None = None,
        **knobs: Any,
    ) -> None:
        self._initial = dict(knobs)
        base = Knobs()
        for name, value in knobs.items():
            if name == "fail_next":
                continue
            if name not in {f.name for f in fields(Knobs)}:
                raise TypeError(f"unknown knob {name!r}")
            setattr(base, name, value)
        # api_key="" means "no key check" even if GENAPI_LOCAL_API_KEY is set in the environment.
        self.state = StandIn(
            base, api_key=api_key if api_key is not None else "", embeddings=embeddings, rerank=rerank
        )
        if "fail_next" in knobs:
            self.state.set_knobs({"fail_next": knobs["fail_next"]})
        self._server = make_server(host, port, self.state)
        h, p = self._server.server_address[:2]
        self.host, self.port = h, p
        self.root = f"http://{h}:{p}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="genapi-local"
        )
        self._thread.start()

    def set_knobs(self, **knobs: Any) -> dict[str, Any]:
        return self.state.set_knobs(knobs)

    def knobs(self) -> dict[str, Any]:
        return self.state.knobs_dict()

    def reset_knobs(self) -> dict[str, Any]:
        defaults = {f.name: f.default for f in fields(Knobs) if f.name != "fail_next"}
        return self.state.set_knobs({**defaults, "fail_next": [], **self._initial})

    def stats(self) -> dict[str, Any]:
        return self.state.stats_dict()

    def count(self, endpoint: str) -> int:
        """Requests received on one endpoint (``"embeddings"``, ``"chat/completions"``, ``"batches"``...)."""
        return self.stats()["requests"].get(endpoint, 0)

    def reset_stats(self) -> None:
        self.state.reset_stats()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def local_server(**knobs: Any) -> Iterator[LocalServer]:
    """``with local_server(rpm=60) as srv: GenAPIConfig(base_url=srv.base_url)...``"""
    server = LocalServer(**knobs)
    try:
        yield server
    finally:
        server.stop()


class LocalServerProcess(_AdminMixin):
    """The stand-in as a child process (``python -m genapi.local``); same admin helpers, over HTTP."""

    def __init__(self, proc: subprocess.Popen, host: str, port: int) -> None:
        self.proc = proc
        self.host, self.port = host, port
        self.root = f"http://{host}:{port}"

    def set_knobs(self, **knobs: Any) -> dict[str, Any]:
        return self._admin("POST", "/admin/knobs", knobs)

    def knobs(self) -> dict[str, Any]:
        return self._admin("GET", "/admin/knobs")

    def reset_knobs(self) -> dict[str, Any]:
        defaults = {f.name: f.default for f in fields(Knobs) if f.name != "fail_next"}
        return self.set_knobs(**defaults, fail_next=[])

    def stats(self) -> dict[str, Any]:
        return self._admin("GET", "/admin/stats")

    def count(self, endpoint: str) -> int:
        return self.stats()["requests"].get(endpoint, 0)

    def reset_stats(self) -> None:
        self._admin("POST", "/admin/stats/reset", {})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LocalServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_subprocess(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    timeout: float = 15.0,
) -> LocalServerProcess:
    """Start ``python -m genapi.local`` and wait until ``/healthz`` answers. Extra CLI flags via ``args``."""
    port = port or free_port(host)
    child_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "genapi.local", "--host", host, "--port", str(port), *(args or [])],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    handle = LocalServerProcess(proc, host, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"genapi.local exited with {proc.returncode}: {err[-2000:]}")
        try:
            with urllib.request.urlopen(f"{handle.root}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return handle
        except OSError:
            time.sleep(0.05)
    handle.stop()
    raise RuntimeError(f"genapi.local did not answer on {handle.root} within {timeout}s")
