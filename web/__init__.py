"""Server-rendered pages (Jinja2 + vendored htmx) over the same services as the API: `install(app)`."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.middleware import SecurityHeaders

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the pages, /static, error pages for page requests, and the security headers to `app`."""
    from web.errors import install_error_pages, too_large_page
    from web.routes import router
    from web.security import SECURITY_HEADERS

    install_error_pages(app)
    app.state.too_large_page = too_large_page  # the API's body limit answers page requests with it
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)

    app.add_middleware(SecurityHeaders, headers=SECURITY_HEADERS, csp_for=_csp_for)


def _csp_for(path: str) -> str:
    from web.security import CSP, DOCS_CSP

    return DOCS_CSP if path == "/docs" or path.startswith("/static/swagger") else CSP
