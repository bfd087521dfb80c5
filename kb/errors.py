"""The one exception family of Zhiku; api/errors.py maps each class to an HTTP status."""
from __future__ import annotations

from typing import Any


class ZhikuError(Exception):
    """Base of every domain error: a stable code, a message for people, optional details."""

    code = "error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class NotFound(ZhikuError):
    code = "not_found"


class Conflict(ZhikuError):
    """A write based on a stale version; details carry both versions so nothing is lost."""

    code = "conflict"


class ValidationFailed(ZhikuError):
    """Input rejected before anything was written; details name the fields."""

    code = "validation_failed"

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        self.errors = errors or []
        super().__init__(message, details={"errors": self.errors})

    @property
    def fields(self) -> list[str]:
        return [e["field"] for e in self.errors]


class InvalidTransition(ZhikuError):
    code = "invalid_transition"


class PermissionDenied(ZhikuError):
    code = "permission_denied"


class Unavailable(ZhikuError):
    """A dependency (index, model) is missing or down; the message names the command that fixes it."""

    code = "unavailable"


class Unauthenticated(ZhikuError):
    """Missing, wrong, expired or forged credentials."""

    code = "unauthenticated"


class RateLimited(ZhikuError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after
