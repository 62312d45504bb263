"""The local stand-in for the Generative APIs: same contract, on localhost, with fault knobs.

A test double for the protocol (it says so in every answer it cannot really give): hash embeddings, lexical
rerank, extractive answers, deterministic transcripts, batches over files/S3. Stdlib HTTP server, threaded.
This module is the HTTP side (routing, streaming, fault injection); `state` holds knobs, limits and counters.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import time
from dataclasses import fields
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from genapi.local.catalogue import error, models_list
from genapi.local.state import ROUTE_RE, Knobs, StandIn, fmt_duration, request_tokens

log = logging.getLogger("genapi.local")

__all__ = ["Handler", "Knobs", "StandIn", "StandInServer", "fmt_duration", "main", "make_server"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate sends; with Nagle on, a keep-alive client waits for its
    # delayed ACK (~40 ms) on every call. A real provider adds no such delay.
    disable_nagle_algorithm = True
    server_version = "genapi-local/0.1"
    state: StandIn  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if os.environ.get("GENAPI_LOCAL_LOG"):
            log.info("%s - %s", self.address_string(), format % args)

    # -- plumbing ---------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, body: Any, headers: dict[str, str] | None = None, *, raw: bytes | None = None
    ) -> None:
        if raw is not None:
            data, ctype = raw, "application/json"
        elif isinstance(body, str):
            data, ctype = body.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        with self.state.lock:
            self.state.statuses[status] += 1

    def _stream(
        self, events: list[tuple[str | None, Any]], headers: dict[str, str], *, cut: bool, error_event=None
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        with self.state.lock:
            self.state.statuses[200] += 1
        stop_at = len(events) // 2 if (cut or error_event is not None) else None

        def chunk(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        for i, (name, payload) in enumerate(events):
            if stop_at is not None and i == stop_at:
                if error_event is not None:
                    chunk(f"data: {json.dumps(error_event)}\n\n".encode())
                    break
                # Cut: drop the connection mid-body, no terminating chunk.
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            text = payload if isinstance(payload, str) else json.dumps(payload)
            prefix = f"event: {name}\n" if name else ""
            chunk(f"{prefix}data: {text}\n\n".encode())
        if error_event is None:
            chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _authorized(self) -> bool:
        key = self.state.api_key
        if not key:
            return True
        return self.headers.get("Authorization", "") == f"Bearer {key}"

    # -- verbs ------------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        try:
            self._route(method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the stand-in answers 500 rather than hanging the client
            log.exception("stand-in error")
            try:
                self._send(500, {"error": {"message": f"stand-in error: {exc}", "type": "server_error"}})
            except OSError:
                self.close_connection = True

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        path = url.path
        state = self.state
        if path == "/healthz":
            return self._send(200, {"status": "ok"})
        if path.startswith("/admin/"):
            body = self._read_body()
            return self._admin(method, path, body)
        raw = self._read_body()
        m = ROUTE_RE.match(path)
        route = m.group(2) if m else path.strip("/")
        endpoint = "batches" if route.startswith("batches") else route
        with state.lock:
            state.stats[endpoint] += 1
        if not self._authorized():
            return self._send(
                401,
                {
                    "error": {
                        "message": "Invalid or missing API key.",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
                {"WWW-Authenticate": "Bearer"},
            )
        if not m:
            return self._send(
                404, {"error": {"message": f"Unknown route {path}", "type": "invalid_request_error"}}
            )
        knobs = state.knobs
        # Parse first so rate limits can count tokens.
        ctype = self.headers.get("Content-Type", "")
        body: Any = None
        form: dict[str, Any] = {}
        upload = None
        if raw and ctype.startswith("multipart/form-data"):
            form, upload = parse_multipart(ctype, raw)
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return self._send(
                    400, {"detail": [{"loc": ["body"], "msg": "invalid JSON body", "type": "json_invalid"}]}
                )
        wants_stream = isinstance(body, dict) and bool(body.get("stream"))
        spec = state._take_fail(endpoint)
        stream_error = None
        if spec is not None:
            if spec.get("in_stream") and wants_stream:
                stream_error = spec.get("body") or {
                    "error": {
                        "message": "Internal error while generating (injected).",
                        "type": "server_error",
                        "code": 500,
                    }
                }
            else:
                status = int(spec["status"])
                hdrs = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
                if spec.get("raw") is not None:
                    return self._send(status, None, hdrs, raw=str(spec["raw"]).encode())
                return self._send(status, spec.get("body") or _default_error(status), hdrs)
        if knobs.error_rate and state.rng.random() < knobs.error_rate:
            status = state.rng.choice((500, 503))
            return self._send(status, _default_error(status))
        admitted, rl_headers, reason = state.admit(request_tokens(route, body))
        if not admitted:
            return self._send(
                429,
                {"error": {"message": reason, "type": "rate_limit_error", "code": "rate_limit_exceeded"}},
                rl_headers,
            )
        try:
            if knobs.latency_ms:  # inside the concurrency slot, like a slow model
                time.sleep(knobs.latency_ms / 1000)
            status, result = self._dispatch(method, route, body, form, upload, url.query)
            if status == 200 and isinstance(result, list) and wants_stream:
                cut = bool(knobs.stream_cut_rate and state.rng.random() < knobs.stream_cut_rate)
                events = [(ev.get("type") if route == "responses" else None, ev) for ev in result]
                return self._stream(events, rl_headers, cut=cut, error_event=stream_error)
            if status == 200 and knobs.malformed_rate and state.rng.random() < knobs.malformed_rate:
                text = json.dumps(result)
                return self._send(200, None, rl_headers, raw=text[: max(1, len(text) // 2)].encode())
            return self._send(status, result, rl_headers)
        finally:
            state.release()

    def _dispatch(self, method: str, route: str, body: Any, form, upload, query: str) -> tuple[int, Any]:
        eng, batches = self.state.engines, self.state.batches
        if method == "GET" and route == "models":
            return models_list()
        if route == "audio/transcriptions" and method == "POST":
            if not form and isinstance(body, dict):
                form = body
            return eng.transcribe(form, upload)
        if route == "batches" and method == "GET":
            q = parse_qs(query)
            limit = int((q.get("limit") or ["20"])[0])
            return batches.list((q.get("after") or [None])[0], max(0, min(limit, 100)))
        if route.startswith("batches/") and method == "GET":
            return batches.get(route.split("/", 1)[1])
        if route.startswith("batches/") and route.endswith("/cancel") and method == "POST":
            return batches.cancel(route.split("/")[1])
        if method != "POST":
            return error(405, f"{method} not allowed on /v1/{route}")
        if not isinstance(body, dict):
            return error(400, "a JSON object body is required")
        if route == "embeddings":
            return eng.embeddings(body)
        if route == "rerank":
            return eng.rerank(body)
        if route == "chat/completions":
            return eng.chat(body)
        if route == "responses":
            return eng.responses(body)
        if route == "batches":
            return batches.create(body)
        return error(404, f"Unknown route /v1/{route}")

    def _admin(self, method: str, path: str, raw: bytes) -> None:
        state = self.state
        if path == "/admin/knobs" and method == "GET":
            return self._send(200, state.knobs_dict())
        if path == "/admin/knobs" and method == "POST":
            try:
                changes = json.loads(raw or b"{}")
                return self._send(200, state.set_knobs(changes))
            except (ValueError, TypeError) as exc:
                return self._send(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
        if path == "/admin/stats" and method == "GET":
            return self._send(200, state.stats_dict())
        if path == "/admin/stats/reset" and method == "POST":
            state.reset_stats()
            return self._send(200, state.stats_dict())
        return self._send(
            404, {"error": {"message": f"Unknown admin route {path}", "type": "invalid_request_error"}}
        )


def _default_error(status: int) -> dict[str, Any]:
    if status == 503:  # the Scaleway gateway's shape
        return {
            "error": "service_unavailable",
            "status": 503,
            "message": "Service temporarily unavailable (injected).",
        }
    if status == 429:
        return {
            "error": {
                "message": "Rate limit reached (injected).",
                "type": "rate_limit_error",
                "code": "rate_limit_exceeded",
            }
        }
    if status >= 500:
        return {
            "error": {
                "message": "Internal server error (injected).",
                "type": "server_error",
                "code": "internal_error",
            }
        }
    return {"error": {"message": f"Injected error {status}.", "type": "invalid_request_error", "code": None}}


def parse_multipart(ctype: str, raw: bytes) -> tuple[dict[str, Any], tuple[str, bytes] | None]:
    msg = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
    form: dict[str, Any] = {}
    upload = None
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None or name == "file":
            upload = (filename or "upload", payload)
        elif name:
            form[name] = payload.decode("utf-8", "replace")
    return form, upload


class StandInServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def make_server(host: str = "127.0.0.1", port: int = 0, state: StandIn | None = None) -> StandInServer:
    handler = type("BoundHandler", (Handler,), {"state": state or StandIn()})
    return StandInServer((host, port), handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m genapi.local", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("GENAPI_LOCAL_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GENAPI_LOCAL_PORT", "8765")))
    parser.add_argument("--api-key", default=None, help="required Bearer key (default GENAPI_LOCAL_API_KEY)")
    parser.add_argument("--embeddings", choices=("hash", "minilm"), default=None)
    parser.add_argument("--rerank", choices=("lexical", "embedding"), default=None)
    for f in fields(Knobs):
        if f.name != "fail_next":
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=float, default=None)
    args = parser.parse_args(argv)
    knobs = Knobs.from_env()
    for f in fields(Knobs):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(knobs, f.name, int(value) if f.type in ("int", "int | None") else value)
    state = StandIn(knobs, api_key=args.api_key, embeddings=args.embeddings, rerank=args.rerank)
    server = make_server(args.host, args.port, state)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host, port = server.server_address[:2]
    print(
        f"genapi.local listening on http://{host}:{port}/v1 (embeddings={state.engines.embeddings_engine})",
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
