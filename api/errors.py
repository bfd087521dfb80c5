"""The one table mapping domain errors to HTTP statuses; web/ renders the same table as pages."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kb.errors import Conflict, InvalidTransition, NotFound, PermissionDenied, Unavailable, ValidationFailed, ZhikuError

STATUS_BY_ERROR: dict[type[ZhikuError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidTransition: 409,
    ValidationFailed: 422,
    PermissionDenied: 403,
    Unavailable: 503,
}


def status_for(error: ZhikuError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]  # type: ignore[index]
    return 400


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ZhikuError)
    async def _domain_error(_request: Request, exc: ZhikuError) -> JSONResponse:
        return JSONResponse(status_code=status_for(exc), content={"error": exc.to_dict()})
