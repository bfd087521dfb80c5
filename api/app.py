"""The FastAPI application factory: create_app(settings) opens everything in lifespan and closes it there."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.deps import RateLimiter
from api.errors import install_error_handlers
from api.routes import attachments, auth, conversations, entries, health, packs, records, search
from api.logging import configure_logging
from api.middleware import BodyLimit, Observe
from api.routes import analytics, metrics
from api.runtime import Runtime
from kb.settings import Settings, get_settings

API_PREFIX = "/api/v1"
THREADS = 128  # > the SQLite pool (50 + 50 overflow, kb/db.py)
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
            opened.live.stop()
            if runtime is None:
                opened.close()
            elif start_worker:
                opened.worker.stop()

    app = FastAPI(title="知库 Zhiku", version="0.1.0", description=DESCRIPTION, lifespan=lifespan, docs_url=None)
    install_error_handlers(app)

    app.add_middleware(BodyLimit, max_body=settings.max_body_bytes, max_upload=settings.upload_max_bytes)
    app.add_middleware(Observe, route_of=_route_template)  # outside the body limit: a 413 is logged too

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
