"""Bearer tokens: a token checked a moment ago is trusted again without a query, but logging out and
expiry take effect at once."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from kb import auth
from kb.db import session_scope
from kb.errors import Unauthenticated
from kb.models import ApiToken, Role
from kb.timeutil import utcnow
from kb.users import create_user


@pytest.fixture
def token(engine):
    with session_scope(engine) as session:
        create_user(session=session, username="坐席小王", password="zhiku-demo-pw", role=Role.AGENT, actor="admin")
    with session_scope(engine) as session:
        issued, _, _ = auth.login(session=session, username="坐席小王", password="zhiku-demo-pw")
    return issued


def test_a_recently_checked_token_needs_no_query(engine, token):
    with Session(engine) as session:
        assert auth.actor_for_token(session=session, token=token).username == "坐席小王"
    with session_scope(engine) as session:  # even with its row gone, the cached answer holds for a few seconds
        for row in session.exec(select(ApiToken)).all():
            session.delete(row)
    with Session(engine) as session:
        assert auth.actor_for_token(session=session, token=token).username == "坐席小王"


def test_logout_ends_the_token_at_once(engine, token):
    with Session(engine) as session:
        auth.actor_for_token(session=session, token=token)
    with session_scope(engine) as session:
        auth.logout(session=session, token=token)
    with Session(engine) as session, pytest.raises(Unauthenticated):
        auth.actor_for_token(session=session, token=token)


def test_an_expired_token_fails_even_when_cached(engine, token):
    with Session(engine) as session:
        auth.actor_for_token(session=session, token=token)
        with pytest.raises(Unauthenticated):
            auth.actor_for_token(session=session, token=token, now=utcnow() + auth.TOKEN_TTL + timedelta(seconds=1))
