"""`/mcp`: the MCP server (search.mcp_server) over Streamable HTTP, inside the Django app.

The service runs under gunicorn as WSGI; the MCP SDK's transport is ASGI. Rather than move the whole site
to ASGI, this DRF view authenticates the request like every other endpoint (the same API keys, 401 and
throttle), then hands the request to the SDK's `StreamableHTTPSessionManager` in stateless, JSON-response
mode: each POST carries one JSON-RPC message and gets its JSON-RPC answer, the mode the MCP specification
provides for servers that keep no session. `async_to_sync` runs the SDK for the length of the request,
and the tools' `sync_to_async` calls come back to this thread. GET (a server-initiated event stream) and
DELETE (ending a session) are answered 405 (only POST is defined), as the specification allows for a
server without sessions.
"""

from __future__ import annotations

import anyio
from asgiref.sync import async_to_sync
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from accounts.authentication import ApiKeyAuthentication
from accounts.permissions import request_api_key
from accounts.throttling import ApiKeyRateThrottle

# Never passed to the SDK: the key was checked here, and tools have no use for it or for cookies.
_WITHHELD_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_SKIPPED_RESPONSE_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})


def _asgi_scope(request) -> dict:
    headers = []
    for key, value in request.META.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").lower()
        else:
            continue
        if name not in _WITHHELD_HEADERS and value != "":
            headers.append((name.encode("latin-1"), str(value).encode("latin-1")))
    port = request.get_port()
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": "",
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "client": (request.META.get("REMOTE_ADDR", ""), 0),
        "server": (request.get_host().rsplit(":", 1)[0], int(port) if str(port).isdigit() else 80),
    }


async def _serve(scope: dict, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request through a fresh stateless session manager; returns (status, headers, body)."""
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from search.mcp_server import server

    manager = StreamableHTTPSessionManager(app=server._lowlevel_server, json_response=True, stateless=True)
    response: dict = {"status": 500, "headers": [], "body": []}
    done = anyio.Event()
    delivered = False

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # the client "disconnects" only once its answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
            response["headers"] = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            response["body"].append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    async with manager.run():
        await manager.handle_request(scope, receive, send)
    return response["status"], response["headers"], b"".join(response["body"])


@extend_schema(exclude=True)  # JSON-RPC, described by the MCP specification rather than OpenAPI
class McpApi(APIView):
    """POST /mcp: one JSON-RPC message of the Model Context Protocol (tools: search, ask, get_passage,
    list_collections), authenticated by API key."""

    authentication_classes = [ApiKeyAuthentication]  # no session auth: agents send a key, not a cookie
    permission_classes = [IsAuthenticated]
    throttle_classes = [ApiKeyRateThrottle]  # the per-key budget; search and ask tools add theirs
    throttle_scope = "mcp"
    parser_classes: list = []  # the body goes to the SDK untouched

    def post(self, request):
        # Imported on the first MCP request, not with the URLs: the SDK costs every process about 1.5 s
        # of CPU to import, and most never serve MCP.
        from search.mcp_server import CALLER, McpCaller

        caller = McpCaller(request=request, user=request.user, api_key=request_api_key(request))
        token = CALLER.set(caller)
        try:
            django_request = request._request
            status, headers, body = async_to_sync(_serve)(_asgi_scope(django_request), django_request.body)
        finally:
            CALLER.reset(token)
        response = HttpResponse(body, status=status)
        for name, value in headers:
            name_text = name.decode("latin-1")
            if name_text.lower() not in _SKIPPED_RESPONSE_HEADERS:
                response[name_text] = value.decode("latin-1")
        return response
