"""Request dependencies as Annotated aliases: runtime, session, the caller, role and scope guards."""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from api.runtime import Runtime
from kb import auth
from kb.db import read_only
from kb.errors import PermissionDenied, RateLimited, Unauthenticated
from kb.models import Actor, Role

BOT = "bot"


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_session(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on any error."""
    with Session(runtime.engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        if session.info.pop("outbox", False):
            runtime.wake_worker()
        for hook in session.info.pop("after_commit", []):  # e.g. push changed cards to live sidebars
            hook()


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="数据库行号 row id")]  # beyond it: 422, not a crash
# Committed when the route returns, before the response is sent: a client never reads stale data
# after a write, and no transaction (on SQLite: the write lock) waits on a slow client.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


@dataclass(frozen=True)
class Caller:
    """Who is calling: a signed-in user, or a bot with an API key and its scopes."""

    actor: Actor
    scopes: frozenset[str] = frozenset()
    key_id: int | None = None

    @property
    def is_bot(self) -> bool:
        return self.actor.role == BOT


class RateLimiter:
    """Per-key token bucket (per process; behind several workers each holds its own share)."""

    def __init__(self) -> None:
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: int, per_minute: int) -> None:
        now = time.monotonic()
        rate = per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / rate)
                raise RateLimited(f"请求过于频繁，请 {wait} 秒后重试 rate limit exceeded", retry_after=wait)
            self._buckets[key_id] = (tokens - 1.0, now)


_bearer = HTTPBearer(auto_error=False, description="`POST /api/v1/auth/token` 获取的令牌 token")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="机器人 / 系统的 API 密钥 API key of a bot")


def get_caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Caller:
    """The authenticated caller, from a bearer token or an X-API-Key header (401 otherwise)."""
    # A read-only session of its own: on SQLite it takes no write lock, and the request's session
    # stays unused until the route writes (the route may search or embed for a while first).
    with Session(read_only(request.app.state.runtime.engine)) as reader:
        return _resolve(request.app, reader, token=bearer.credentials if bearer is not None else None, api_key=api_key)


def _resolve(app: Any, session: Session, *, token: str | None, api_key: str | None) -> Caller:
    if token:
        return Caller(auth.actor_for_token(session=session, token=token))
    if api_key:
        key = auth.key_for(session=session, key=api_key)
        app.state.rate_limiter.take(key.id or 0, key.rate_per_minute)
        return Caller(Actor(f"apikey:{key.name}", BOT), frozenset(key.scopes), key.id)
    raise Unauthenticated("需要登录或 API 密钥 authentication required (Bearer token or X-API-Key)")


def caller_for_credentials(app: Any, *, token: str | None, api_key: str | None, scope: str) -> Caller:
    """For routes outside the dependency system (WebSocket): authenticate and check the conversation guard."""
    runtime: Runtime = app.state.runtime
    with Session(read_only(runtime.engine)) as session:
        caller = _resolve(app, session, token=token, api_key=api_key)
    return allow(*STAFF, scope=scope)(caller)


CallerDep = Annotated[Caller, Depends(get_caller)]


def allow(*roles: Role, scope: str | None = None) -> Callable[[Caller], Caller]:
    """A guard: the caller must have one of `roles`, or be a bot holding `scope`."""
    names = {r.value for r in roles}

    def guard(caller: CallerDep) -> Caller:
        if caller.is_bot:
            if scope is not None and scope in caller.scopes:
                return caller
            raise PermissionDenied(f"API 密钥缺少权限范围 {scope or '(none)'} key lacks the scope for this route",
                                   details={"scope": scope})
        if caller.actor.role not in names:
            raise PermissionDenied(f"无权限：需要角色 {'/'.join(sorted(names))} — role {caller.actor.role} may not do this",
                                   details={"allowed": sorted(names)})
        return caller

    return guard


STAFF = (Role.AGENT, Role.EXPERT, Role.REVIEWER, Role.ADMIN)
Staff = Annotated[Caller, Depends(allow(*STAFF))]
Authors = Annotated[Caller, Depends(allow(Role.EXPERT, Role.ADMIN))]
Reviewers = Annotated[Caller, Depends(allow(Role.REVIEWER, Role.ADMIN))]
Editors = Annotated[Caller, Depends(allow(Role.EXPERT, Role.REVIEWER, Role.ADMIN))]
Admins = Annotated[Caller, Depends(allow(Role.ADMIN))]
Auditors = Annotated[Caller, Depends(allow(Role.REVIEWER, Role.ADMIN))]
Searchers = Annotated[Caller, Depends(allow(*STAFF, scope="search"))]
Retrievers = Annotated[Caller, Depends(allow(*STAFF, scope="retrieve"))]
FeedbackGivers = Annotated[Caller, Depends(allow(*STAFF, scope="feedback"))]
NoticeReaders = Annotated[Caller, Depends(allow(*STAFF, scope="notices"))]
Conversers = Annotated[Caller, Depends(allow(*STAFF, scope="conversations"))]
