"""The FastAPI application factory: create_app(settings) opens everything in lifespan and closes it there."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from api.deps import RateLimiter
from api.errors import error_body, install_error_handlers
from api.routes import auth, entries, health, packs, records, search
from api.runtime import Runtime
from kb.settings import Settings, get_settings

API_PREFIX = "/api/v1"
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

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title="知库 Zhiku API",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/static/swagger/favicon-32x32.png")

    app.include_router(health.router)
    for module in (auth, entries, packs, search, records):
        app.include_router(module.router, prefix=API_PREFIX)
    return app
