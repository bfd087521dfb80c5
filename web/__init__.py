"""Server-rendered pages (Jinja2 + vendored htmx) over the same services as the API: `install(app)`."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the pages, /static, error pages for page requests, and the security headers to `app`."""
    from web.errors import install_error_pages
    from web.routes import router
    from web.security import CSP, DOCS_CSP, SECURITY_HEADERS

    install_error_pages(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        docs = request.url.path == "/docs" or request.url.path.startswith("/static/swagger")
        response.headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else CSP)
        return response
