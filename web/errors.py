"""Error pages in Chinese from the same domain-error table as api/errors.py; /api keeps its JSON bodies."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import status_for
from kb.errors import RateLimited, ValidationFailed, ZhikuError
from web import messages
from web.render import render
from web.security import CsrfFailed, LoginRequired, login_url, safe_next

log = logging.getLogger(__name__)
API_PATHS = ("/api/", "/docs", "/openapi.json", "/healthz", "/metrics", "/static/")


def is_web(request: Request) -> bool:
    """A page request: routed to web/, or an unknown path a browser asked for as HTML."""
    route = request.scope.get("route")
    endpoint = getattr(route, "endpoint", None)
    if endpoint is not None:
        return getattr(endpoint, "__module__", "").startswith("web.")
    path = request.url.path
    return not path.startswith(API_PATHS) and "text/html" in request.headers.get("accept", "")


def _back(request: Request) -> str | None:
    referer = request.headers.get("referer", "")
    base = str(request.base_url)
    if referer.startswith(base):
        return safe_next("/" + referer[len(base):])
    return None


def error_page(request: Request, *, status: int, title: str, message: str, detail: str | None = None,
               errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> Response:
    context = {"status": status, "title": title, "message": message, "detail": detail, "errors": errors or [],
               "back": _back(request)}
    if request.headers.get("hx-request"):
        # htmx: show the message in the page's message area instead of swapping the target.
        return render(request, "partials/error_inline.html", context, status_code=status,
                      headers={**(headers or {}), "HX-Retarget": "#messages", "HX-Reswap": "innerHTML"})
    return render(request, "error.html", context, status_code=status, headers=headers)


def too_large_page(request: Request, limit: int) -> Response | None:
    """The 413 page for a browser's page request refused before routing (body over the limit);
    None for API calls, which keep their JSON body."""
    page = request.headers.get("hx-request") or "text/html" in request.headers.get("accept", "")
    if request.url.path.startswith(API_PATHS) or not page:
        return None
    return error_page(request, status=413, title=messages.HTTP_TITLES[413], message=messages.too_large(limit))


def install_error_pages(app: FastAPI) -> None:
    """Wrap the API's handlers: page requests get HTML pages, everything else what api/errors.py returns."""
    api_handlers = dict(app.exception_handlers)

    async def delegate(request: Request, exc: Exception, cls: type) -> Response:
        return await api_handlers[cls](request, exc)  # type: ignore[no-any-return]

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        target = login_url(exc.next_url)
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, _exc: CsrfFailed) -> Response:
        return error_page(request, status=403, title="请求被拒绝", message=messages.CSRF_FAILED)

    @app.exception_handler(ZhikuError)
    async def _domain(request: Request, exc: ZhikuError) -> Response:
        if not is_web(request):
            return await delegate(request, exc, ZhikuError)
        errors = exc.errors if isinstance(exc, ValidationFailed) else []
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return error_page(request, status=status_for(exc), title=messages.error_title(exc),
                          message=messages.chinese_part(exc.message), detail=exc.message, errors=errors, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if not is_web(request):
            return await delegate(request, exc, RequestValidationError)
        errors = [{"field": str(e["loc"][-1]) if e["loc"] else "body", "message": str(e["msg"])} for e in exc.errors()]
        return error_page(request, status=422, title=messages.HTTP_TITLES[422], message="请检查填写的内容。", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if not is_web(request):
            return await delegate(request, exc, StarletteHTTPException)
        message = messages.PAGE_NOT_FOUND if exc.status_code == 404 else str(exc.detail)
        return error_page(request, status=exc.status_code, title=messages.HTTP_TITLES.get(exc.status_code, messages.GENERIC_ERROR),
                          message=message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if not is_web(request):
            return await delegate(request, exc, Exception)
        log.exception("unhandled error on a page")
        return error_page(request, status=500, title=messages.HTTP_TITLES[500], message=messages.INTERNAL_ERROR)
