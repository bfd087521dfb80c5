"""The FastAPI application factory: create_app(settings) opens everything in lifespan and closes it there."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routes import health
from api.runtime import Runtime
from kb.settings import Settings, get_settings


def create_app(settings: Settings | None = None, *, start_worker: bool = True) -> FastAPI:
    """Build the app; nothing is opened until the lifespan starts. The embedded default runs the
    outbox worker in-process; with `zhiku worker` running separately pass start_worker=False."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime.open(settings)
        app.state.runtime = runtime
        if start_worker:
            runtime.worker.start()
        try:
            yield
        finally:
            runtime.close()

    app = FastAPI(title="知库 Zhiku", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health.router)
    return app
