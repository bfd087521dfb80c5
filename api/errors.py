"""The one table mapping domain errors to HTTP statuses and the error body `{error, message, detail}`;
web/ renders the same table as pages."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kb.errors import (
    Conflict,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
    ZhikuError,
)

log = logging.getLogger(__name__)


STATUS_BY_ERROR: dict[type[ZhikuError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidTransition: 409,
    ValidationFailed: 422,
    PermissionDenied: 403,
    Unauthenticated: 401,
    RateLimited: 429,
    Unavailable: 503,
}
HTTP_CODES = {401: "unauthenticated", 403: "permission_denied", 404: "not_found", 405: "method_not_allowed",
              413: "payload_too_large", 429: "rate_limited"}


def status_for(error: ZhikuError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]  # type: ignore[index]
    return 400


def error_body(code: str, message: str, detail: object = None) -> dict[str, object]:
    return {"error": code, "message": message, "detail": detail if detail is not None else {}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ZhikuError)
    async def _domain_error(_request: Request, exc: ZhikuError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        if isinstance(exc, Unauthenticated):
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse(status_code=status_for(exc), content=error_body(exc.code, exc.message, exc.details),
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body",
                   "message": str(e["msg"]).removeprefix("Value error, ")} for e in exc.errors()]
        message = "请求无效 invalid request: " + ", ".join(dict.fromkeys(e["field"] for e in errors))
        return JSONResponse(status_code=422, content=error_body("validation_failed", message, {"errors": errors}))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(status_code=exc.status_code, content=error_body(code, str(exc.detail)),
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(status_code=500, content=error_body("internal_error", "服务器内部错误 internal error"))
