"""Shared fixtures: settings on a temp data dir, a fresh migrated database per test (SQLite, and
PostgreSQL for tests that ask for `any_engine`), sessions."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from kb.db import make_engine, upgrade
from kb.settings import Settings

PG_ENV = "ZHIKU_TEST_DATABASE_URL"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]


def _postgres_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        message = f"{PG_ENV} is not set: PostgreSQL tests cannot run"
        if os.environ.get("CI"):
            pytest.fail(message + " (in CI a missing PostgreSQL is a failure)")
        pytest.skip(message)
    return url


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'zhiku.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine() -> Iterator[Engine]:
    """A fresh schema in the test database per test, dropped afterwards (safe under xdist)."""
    base = _postgres_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    engine = make_engine(f"{base}{sep}options=-csearch_path%3D{schema}")
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_engine(request) -> Engine:
    """The same test on SQLite and on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_engine")


@pytest.fixture
def engine(sqlite_engine) -> Engine:
    return sqlite_engine


@pytest.fixture
def session(engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def any_session(any_engine) -> Iterator[Session]:
    with Session(any_engine, expire_on_commit=False) as s:
        yield s


# ---------------------------------------------------------------- search stack (fake embedder)


@pytest.fixture
def memory_index():
    from qdrant_client import QdrantClient

    from retrieval.index.client import QdrantClientIndex

    index = QdrantClientIndex(QdrantClient(":memory:"))
    yield index
    index.close()


@pytest.fixture
def runtime(settings, sqlite_engine, memory_index):
    """A Runtime on a fresh SQLite database, an in-memory Qdrant and the deterministic hashing embedder."""
    from api.runtime import Runtime
    from retrieval.embedding import HashingEmbedder

    settings.database_url = str(sqlite_engine.url)
    rt = Runtime.open(settings, embedder=HashingEmbedder(), index=memory_index)
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    """The real offline model: the one `make test` prepared under ./data, else built once into a temp dir."""
    from ingestion.model_prepare import prepare_e5_model

    candidate = Path(os.environ.get("ZHIKU_TEST_MODEL", Path(__file__).resolve().parent.parent / "data" / "models" / "multilingual-e5-small"))
    if (candidate / "zhiku_model.json").exists():
        return candidate
    return prepare_e5_model(tmp_path_factory.mktemp("model") / "multilingual-e5-small")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test (DNS included); loopback too."""
    import socket

    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in an offline test")

    for target, name in ((socket.socket, "connect"), (socket.socket, "connect_ex"), (socket, "getaddrinfo"),
                         (socket, "create_connection")):
        monkeypatch.setattr(target, name, refuse)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return attempts


# ---------------------------------------------------------------- HTTP API

ROLES = ("agent", "expert", "reviewer", "admin")
PASSWORD = "zhiku-test-pass"


@pytest.fixture
def api(runtime):
    """A TestClient on the runtime above, with one user per role (and a second expert and reviewer)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from kb import users
    from kb.db import session_scope

    with session_scope(runtime.engine) as s:
        for name in (*ROLES, "expert2", "reviewer2"):
            users.create_user(session=s, username=name, password=PASSWORD, role=name.rstrip("2"), actor="test")
    with TestClient(create_app(runtime=runtime, start_worker=False)) as client:
        yield client


def token_headers(client, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    """headers(username) -> Authorization headers for that user, signed in once through the API."""
    cache: dict[str, dict[str, str]] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in cache:
            response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
            assert response.status_code == 200, response.text
            cache[username] = {"Authorization": f"Bearer {response.json()['access_token']}"}
        return cache[username]

    return headers


@pytest.fixture
def login(api):
    """login(username) -> Authorization headers."""
    return token_headers(api)


@pytest.fixture
def data_dir_with_db(tmp_path, monkeypatch):
    """ZHIKU_DATA_DIR on a migrated SQLite database with the demo accounts' usernames, for CLI tests."""
    from kb import users
    from kb.db import session_scope

    data = tmp_path / "cli-data"
    monkeypatch.setenv("ZHIKU_DATA_DIR", str(data))
    monkeypatch.delenv("ZHIKU_DATABASE_URL", raising=False)
    engine = make_engine(f"sqlite:///{data / 'zhiku.db'}")
    upgrade(engine)
    with session_scope(engine) as s:
        users.create_user(session=s, username="expert", password=PASSWORD, role="expert", actor="test")
    engine.dispose()
    return data
