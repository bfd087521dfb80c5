"""Sign-in, sign-out and API keys."""
from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import Admins, CallerDep, RowId, SessionDep
from api.schemas import ApiKeyIn, ApiKeyOut, TokenIn, TokenOut
from kb import auth

router = APIRouter(tags=["auth"])


@router.post("/auth/token", response_model=TokenOut)
def token(body: TokenIn, session: SessionDep) -> TokenOut:
    """Sign in with username and password; returns a bearer token (five failures lock the account for 15 minutes)."""
    issued, user, ttl = auth.login(session=session, username=body.username, password=body.password)
    return TokenOut(access_token=issued, role=user.role, expires_in=ttl)


@router.post("/auth/logout", status_code=204)
def logout(request: Request, caller: CallerDep, session: SessionDep) -> None:
    """End this session: the bearer token stops working."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        auth.logout(session=session, token=credentials)


@router.post("/api-keys", response_model=ApiKeyOut, status_code=201)
def create_key(body: ApiKeyIn, caller: Admins, session: SessionDep) -> ApiKeyOut:
    """Admin: create a key for a bot; the key is shown once, in this response."""
    key, row = auth.create_api_key(session=session, name=body.name, scopes=body.scopes, actor=caller.actor,
                                   rate_per_minute=body.rate_per_minute)
    return ApiKeyOut(**row.model_dump(), key=key)


@router.get("/api-keys", response_model=list[ApiKeyOut])
def list_keys(caller: Admins, session: SessionDep) -> list[ApiKeyOut]:
    """Admin: every key (never the secret)."""
    return [ApiKeyOut(**k.model_dump()) for k in auth.list_api_keys(session=session)]


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut)
def revoke_key(key_id: RowId, caller: Admins, session: SessionDep) -> ApiKeyOut:
    """Admin: revoke a key at once."""
    return ApiKeyOut(**auth.revoke_api_key(session=session, key_id=key_id, actor=caller.actor).model_dump())
