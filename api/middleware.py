"""The app's HTTP middleware as plain ASGI: request bodies bounded, request id and latency, security
headers. Starlette's `@app.middleware("http")` (BaseHTTPMiddleware) runs every request through an
extra task and memory streams; three of them were a large share of a busy server's event loop
(live-card benchmark), these pass the request through in the same task."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from api.logging import REQUEST_ID_HEADER, accept_request_id, request_id
from kb import metrics as prom

_request_log = logging.getLogger("zhiku.request")


class BodyLimit:
    """A declared Content-Length above the limit (uploads have their own) → 413 before the body is read.
    A front end may answer its own requests with a page instead of JSON: it sets
    `app.state.too_large_page(request, limit) -> Response | None` (the web pages install theirs)."""

    def __init__(self, app: ASGIApp, *, max_body: int, max_upload: int) -> None:
        self.app, self.max_body, self.max_upload = app, max_body, max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            length = headers.get("content-length")
            limit = self.max_upload if headers.get("content-type", "").startswith("multipart/") else self.max_body
            if length and length.isdigit() and int(length) > limit:
                page: Callable[[Request, int], Response | None] | None = getattr(
                    scope["app"].state, "too_large_page", None) if "app" in scope else None
                response = page(Request(scope), limit) if page is not None else None
                if response is None:
                    response = JSONResponse(status_code=413, content=error_body(
                        "payload_too_large", f"请求体过大（上限 {limit} 字节） request body too large"))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Observe:
    """Request id (X-Request-ID in and out, in every log line), one log line and the latency metric
    per request, labelled with the route template."""

    def __init__(self, app: ASGIApp, *, route_of: Callable[[Request], str]) -> None:
        self.app, self.route_of = app, route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = accept_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            request = Request(scope)
            route = self.route_of(request)
            prom.REQUEST_LATENCY.labels(method=request.method, route=route, status=str(status)).observe(elapsed)
            _request_log.info("%s %s %s %.1f ms", request.method, route, status, elapsed * 1000,
                              extra={"request_id": rid, "method": request.method, "route": route, "path": request.url.path,
                                     "status": status, "duration_ms": round(elapsed * 1000, 2)})
            request_id.reset(token)


class SecurityHeaders:
    """Headers every response carries unless the route set its own (CSP chosen by path)."""

    def __init__(self, app: ASGIApp, *, headers: Mapping[str, str], csp_for: Callable[[str], str]) -> None:
        self.app, self.headers, self.csp_for = app, dict(headers), csp_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self.csp_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)
