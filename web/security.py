"""Browser sessions over kb.auth tokens, CSRF synchronizer tokens, role guards and security headers.

The session cookie holds the same bearer token `POST /api/v1/auth/token` issues (HttpOnly,
SameSite=Strict, Secure over HTTPS), so expiry (8 h), revocation on logout and account
deactivation work exactly as for the API. The CSRF token is HMAC(session token, "csrf"): tied to
the session, unguessable without the cookie (which scripts cannot read), and needs no server
state. Before login a random pre-session cookie plays the same role for the login form.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from sqlmodel import Session
from starlette.datastructures import FormData

from api.deps import get_session
from kb import auth
from kb.errors import PermissionDenied, Unauthenticated
from kb.models import Actor, Role

SESSION_COOKIE = "zhiku_session"
LOGIN_COOKIE = "zhiku_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
# Swagger UI (/docs, served from the swagger-ui-bundle package) starts itself with an inline script.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


# One transaction per page request, committed *before* the response is sent (FastAPI's default
# request scope commits after it), so the page a redirect leads to always sees the change.
WebSession = Annotated[Session, Depends(get_session, scope="function")]


class LoginRequired(Exception):
    """No valid session: the error handler sends the browser to the login page."""

    def __init__(self, next_url: str = "/") -> None:
        super().__init__(next_url)
        self.next_url = next_url


class CsrfFailed(Exception):
    """A state-changing request without the session's CSRF token."""


def _mac(secret: str, purpose: str) -> str:
    return hmac.new(secret.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).hexdigest()


def csrf_token_for(request: Request) -> str:
    """The token forms and htmx must send back: tied to the session cookie (or the pre-login cookie)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        return _mac(token, "csrf")
    nonce = request.cookies.get(LOGIN_COOKIE) or getattr(request.state, "login_nonce", None)
    if not nonce:
        nonce = secrets.token_urlsafe(24)
        request.state.login_nonce = nonce  # set as a cookie by the login page
    return _mac(nonce, "login")


async def csrf_protect(request: Request) -> None:
    """Router dependency: every unsafe method needs the synchronizer token (form field or header)."""
    if request.method in SAFE_METHODS:
        return
    secret = request.cookies.get(SESSION_COOKIE)
    purpose = "csrf"
    if not secret:
        secret, purpose = request.cookies.get(LOGIN_COOKIE), "login"
    if not secret:
        raise CsrfFailed()
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form: FormData = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, _mac(secret, purpose)):
        raise CsrfFailed()


def set_session_cookie(response, request: Request, token: str, max_age: int) -> None:  # type: ignore[no-untyped-def]
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/")


def set_login_cookie(response, request: Request) -> None:  # type: ignore[no-untyped-def]
    nonce = getattr(request.state, "login_nonce", None)
    if nonce and not request.cookies.get(LOGIN_COOKIE):
        response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")


def clear_session_cookie(response) -> None:  # type: ignore[no-untyped-def]
    response.delete_cookie(SESSION_COOKIE, path="/")


def safe_next(value: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


# ---------------------------------------------------------------- the signed-in user


@dataclass(frozen=True)
class WebUser:
    actor: Actor
    csrf: str

    @property
    def username(self) -> str:
        return self.actor.username

    @property
    def role(self) -> str:
        return self.actor.role


def _next_of(request: Request) -> str:
    path = request.url.path
    return path + (f"?{request.url.query}" if request.url.query else "")


def current_user(request: Request, session: WebSession) -> WebUser:
    """The signed-in user from the session cookie; otherwise the browser goes to the login page."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired(_next_of(request))
    try:
        actor = auth.actor_for_token(session=session, token=token)
    except Unauthenticated:
        raise LoginRequired(_next_of(request)) from None
    user = WebUser(actor, _mac(token, "csrf"))
    request.state.user = user
    # End the read transaction (on SQLite it holds the write lock): the page may search, or let a
    # service run its own transactions, before it writes anything.
    session.commit()
    return user


UserDep = Annotated[WebUser, Depends(current_user)]


def require(*roles: Role) -> Callable[[WebUser], WebUser]:
    names = {r.value for r in roles}

    def guard(user: UserDep) -> WebUser:
        if user.role not in names:
            raise PermissionDenied("您的角色无权访问此页面", details={"allowed": sorted(names)})
        return user

    return guard


AnyStaff = UserDep
Agents = Annotated[WebUser, Depends(require(Role.AGENT, Role.EXPERT, Role.REVIEWER, Role.ADMIN))]
Authors = Annotated[WebUser, Depends(require(Role.EXPERT, Role.ADMIN))]
Reviewers = Annotated[WebUser, Depends(require(Role.REVIEWER, Role.ADMIN))]
Editors = Annotated[WebUser, Depends(require(Role.EXPERT, Role.REVIEWER, Role.ADMIN))]
Admins = Annotated[WebUser, Depends(require(Role.ADMIN))]


def login_url(next_url: str) -> str:
    return "/login?next=" + quote(safe_next(next_url), safe="/")
