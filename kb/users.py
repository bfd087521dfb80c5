"""User accounts: create with an argon2 password hash, look up, check a password."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, VerifyMismatchError
from sqlmodel import Session, col, select

from kb import audit
from kb.errors import Conflict, NotFound, ValidationFailed
from kb.models import Role, User

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError):
        return False


def create_user(
    *,
    session: Session,
    username: str,
    password: str,
    role: str,
    actor: str,
    department: str | None = None,
    display_name: str = "",
) -> User:
    """Create an account; usernames are unique, roles are agent / expert / reviewer / admin."""
    username = username.strip()
    errors = []
    if not username or len(username) > 64:
        errors.append({"field": "username", "message": "用户名须为 1–64 个字符 username must be 1–64 characters"})
    if len(password) < MIN_PASSWORD_LENGTH:
        errors.append({"field": "password", "message": f"密码至少 {MIN_PASSWORD_LENGTH} 位 password needs at least {MIN_PASSWORD_LENGTH} characters"})
    if role not in {r.value for r in Role}:
        errors.append({"field": "role", "message": f"未知角色 unknown role {role!r}; allowed: {', '.join(r.value for r in Role)}"})
    if errors:
        raise ValidationFailed("输入无效 invalid input: " + ", ".join(e["field"] for e in errors), errors=errors)
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise Conflict(f"用户名已存在 user {username!r} already exists", details={"username": username})
    user = User(
        username=username, password_hash=hash_password(password), role=role,
        department=department, display_name=display_name or username,
    )
    session.add(user)
    session.flush()
    audit.append(
        session=session, actor=actor, action="user.create", object_type="user", object_id=username,
        detail={"role": role, "department": department},
    )
    return user


def get_user(*, session: Session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"用户不存在 user {username!r} not found", details={"username": username})
    return user


def list_users(*, session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.username))).all())
