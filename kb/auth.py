"""Sign-in with lockout, bearer tokens and API keys. Only hashes of secrets are stored."""
from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime, timedelta

from sqlmodel import Session, select

from kb import audit
from kb.errors import NotFound, PermissionDenied, Unauthenticated, ValidationFailed
from kb.lru import Lru
from kb.models import Actor, ApiKey, ApiToken, Role, User
from kb.timeutil import utcnow
from kb.users import password_matches

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
TOKEN_TTL = timedelta(hours=8)
SCOPES = ("search", "retrieve", "feedback", "notices", "conversations")
KEY_PREFIX = "zk_"


AuthFailed = Unauthenticated
TOKEN_CACHE_S = 5.0  # a token checked this recently is trusted again without a query


# Tokens resolved in the last few seconds, by digest: (actor, token expiry, trusted until — monotonic).
# A live sidebar sends several requests a second, and two queries per request were a large share of a
# busy server's database work. Logging out in this process drops the token at once; a logout or a
# disabled account seen by another process takes effect here within TOKEN_CACHE_S.
_tokens: Lru[str, tuple[Actor, datetime, float]] = Lru(10_000)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def login(*, session: Session, username: str, password: str, now: datetime | None = None,
          ttl: timedelta = TOKEN_TTL) -> tuple[str, User, int]:
    """Check the password; returns (token, user, seconds to expiry). Five failures lock for 15 minutes."""
    now = now or utcnow()
    user = session.exec(select(User).where(User.username == username)).first()
    message = "用户名或密码错误 wrong username or password"
    if user is None or not user.active:
        raise AuthFailed(message)
    if user.locked_until is not None and user.locked_until > now:
        raise AuthFailed(f"账号已锁定至 {user.locked_until:%H:%M} UTC account locked after repeated failures",
                         details={"locked_until": user.locked_until.isoformat()})
    if not password_matches(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until, user.failed_logins = now + LOCKOUT, 0
            audit.append(session=session, actor=username, action="user.locked", object_type="user", object_id=username)
        session.add(user)
        session.commit()  # the failure count must survive the error response
        raise AuthFailed(message)
    user.failed_logins, user.locked_until = 0, None
    token = secrets.token_urlsafe(32)
    session.add(ApiToken(token_hash=_digest(token), username=user.username, created_at=now, expires_at=now + ttl))
    session.add(user)
    return token, user, int(ttl.total_seconds())


def actor_for_token(*, session: Session, token: str, now: datetime | None = None) -> Actor:
    now = now or utcnow()
    digest = _digest(token)
    cached = _tokens.get(digest)
    if cached is not None and cached[2] >= time.monotonic() and cached[1] > now:
        return cached[0]
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise AuthFailed("登录已失效，请重新登录 token invalid or expired")
    user = session.exec(select(User).where(User.username == row.username)).first()
    if user is None or not user.active:
        raise AuthFailed("账号不可用 account disabled")
    actor = Actor(user.username, user.role)
    _tokens.put(digest, (actor, row.expires_at, time.monotonic() + TOKEN_CACHE_S))
    return actor


def logout(*, session: Session, token: str) -> None:
    _tokens.pop(_digest(token))
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == _digest(token))).first()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)


def create_api_key(*, session: Session, name: str, scopes: list[str], actor: Actor,
                   rate_per_minute: int = 120) -> tuple[str, ApiKey]:
    """Admin: a new key for a bot; returns (the key, shown once, and its row)."""
    if not actor.has(Role.ADMIN):
        raise PermissionDenied("仅管理员可创建 API 密钥 only admins create API keys")
    unknown = sorted(set(scopes) - set(SCOPES))
    if not name.strip() or not scopes or unknown:
        raise ValidationFailed("API 密钥需要名称和有效权限范围 a key needs a name and known scopes",
                               errors=[{"field": "scopes" if scopes else "name", "message": f"allowed: {', '.join(SCOPES)}; unknown: {unknown}"}])
    if not 1 <= rate_per_minute <= 100_000:
        raise ValidationFailed("rate_per_minute 超出范围", errors=[{"field": "rate_per_minute", "message": "1–100000"}])
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name.strip(), prefix=key[:10], key_hash=_digest(key), scopes=sorted(set(scopes)),
                 rate_per_minute=rate_per_minute, created_by=actor.username)
    session.add(row)
    session.flush()
    audit.append(session=session, actor=actor.username, action="apikey.create", object_type="api_key",
                 object_id=str(row.id), detail={"name": row.name, "scopes": row.scopes, "prefix": row.prefix})
    return key, row


def revoke_api_key(*, session: Session, key_id: int, actor: Actor) -> ApiKey:
    if not actor.has(Role.ADMIN):
        raise PermissionDenied("仅管理员可吊销 API 密钥 only admins revoke API keys")
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"API 密钥不存在 key {key_id} not found")
    row.revoked_at = row.revoked_at or utcnow()
    session.add(row)
    audit.append(session=session, actor=actor.username, action="apikey.revoke", object_type="api_key", object_id=str(key_id))
    return row


def key_for(*, session: Session, key: str) -> ApiKey:
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == _digest(key))).first()
    if row is None or row.revoked_at is not None:
        raise AuthFailed("API 密钥无效 invalid API key")
    return row


def list_api_keys(*, session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(ApiKey.id)).all())  # type: ignore[arg-type]
