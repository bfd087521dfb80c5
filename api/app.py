"""The FastAPI application factory: create_app(settings) opens everything in lifespan and closes it there."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from api.deps import RateLimiter
from api.errors import error_body, install_error_handlers
from api.routes import attachments, auth, conversations, entries, health, packs, records, search
from api.logging import REQUEST_ID_HEADER, accept_request_id, configure_logging, request_id
from api.routes import analytics, metrics
from api.runtime import Runtime
from kb import metrics as prom
from kb.settings import Settings, get_settings

API_PREFIX = "/api/v1"
THREADS = 128  # > the SQLite pool (10 + 40 overflow, kb/db.py)
_request_log = logging.getLogger("zhiku.request")
DESCRIPTION = """知库 Zhiku 的 HTTP 接口：坐席检索、机器人问答检索、更新包提交与合规审核、变更通知、审计。

认证：`POST /api/v1/auth/token` 获取 Bearer 令牌；机器人使用管理员创建的 `X-API-Key`。
错误统一为 `{error, message, detail}`，`error` 取值：not_found, conflict, invalid_transition,
validation_failed, permission_denied, rate_limited, unauthenticated。"""


def create_app(settings: Settings | None = None, *, start_worker: bool | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; nothing is opened until the lifespan starts. The embedded default runs the
    outbox worker in-process; with `zhiku worker` running separately pass start_worker=False.
    A caller-owned `runtime` (tests) is used as given and left open."""
    settings = settings or (runtime.settings if runtime else get_settings())
    if start_worker is None:
        start_worker = settings.run_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = runtime or Runtime.open(settings)
        app.state.runtime = opened
        app.state.rate_limiter = RateLimiter()
        # Load the model and what search learns from the knowledge base now, not inside a request
        # that holds a database transaction.
        opened.warm_up()
        opened.live.bind(asyncio.get_running_loop())
        # More worker threads than database connections: a thread that holds SQLite's write lock
        # always finds a thread to commit on, even when every connection is waiting for the lock.
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        if start_worker:
            opened.worker.start()
        try:
            yield
        finally:
            if runtime is None:
                opened.close()
            elif start_worker:
                opened.worker.stop()

    app = FastAPI(title="知库 Zhiku", version="0.1.0", description=DESCRIPTION, lifespan=lifespan, docs_url=None)
    install_error_handlers(app)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):  # type: ignore[no-untyped-def]
        length = request.headers.get("content-length")
        multipart = request.headers.get("content-type", "").startswith("multipart/")
        limit = settings.upload_max_bytes if multipart else settings.max_body_bytes
        if length and length.isdigit() and int(length) > limit:
            return JSONResponse(status_code=413, content=error_body(
                "payload_too_large", f"请求体过大（上限 {limit} 字节） request body too large"))
        return await call_next(request)

    @app.middleware("http")
    async def observe(request: Request, call_next):  # type: ignore[no-untyped-def]
        # Outermost middleware: request id for the logs and the response, latency per route template.
        rid = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[REQUEST_ID_HEADER] = rid
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(request)
            prom.REQUEST_LATENCY.labels(method=request.method, route=route, status=str(status)).observe(elapsed)
            _request_log.info("%s %s %s %.1f ms", request.method, route, status, elapsed * 1000,
                              extra={"request_id": rid, "method": request.method, "route": route, "path": request.url.path,
                                     "status": status, "duration_ms": round(elapsed * 1000, 2)})
            request_id.reset(token)

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title="知库 Zhiku API",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/static/swagger/favicon-32x32.png")

    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(analytics.router, prefix=API_PREFIX)
    for module in (auth, entries, packs, search, records, attachments, conversations):
        app.include_router(module.router, prefix=API_PREFIX)
    # The web pages (web/): routes, /static, HTML error pages for page requests, security headers.
    import web

    web.install(app)
    return app


def _route_template(request: Request) -> str:
    """The matched route's template with its router prefix (`/api/v1/entries/{entry_id}`), never the raw
    path (one series per route, whatever ids callers send); `unmatched` for a 404 on no route."""
    path = getattr(request.scope.get("route"), "path", None)
    if not path:
        return "unmatched"
    actual = request.url.path
    extra = actual.rstrip("/").count("/") - path.rstrip("/").count("/")
    if extra <= 0 or ":path}" in path:
        return path
    return "/".join(actual.split("/")[: extra + 1]) + path


def serve_app() -> FastAPI:
    """The app as `zhiku serve` runs it (also uvicorn's factory in each worker): logging configured first."""
    settings = get_settings()
    configure_logging(settings.log_level, json_format=settings.log_format == "json")
    return create_app(settings)
