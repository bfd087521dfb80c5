"""Engine, sessions and migrations for SQLite (embedded default) and PostgreSQL."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from kb.models import AuditEvent, EntryVersion

MIGRATIONS = Path(__file__).parent / "migrations"
READ_ONLY = "zhiku_read_only"
_WRITER = "zhiku_holds_write_lock"


def _json_dumps(value: object) -> str:
    # Keep Chinese readable in the database (psql, sqlite3) instead of \uXXXX escapes.
    return json.dumps(value, ensure_ascii=False)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and write-locking transactions."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, json_serializer=_json_dumps,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=50, max_overflow=50,  # kept open: a new SQLite connection costs its PRAGMAs each time
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, echo=echo, json_serializer=_json_dumps, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling begins lazily and deferred; two writers that both read
    # first would then fail with "database is locked". BEGIN IMMEDIATE makes writers queue instead.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    # Writers of this process queue on a lock of their own before BEGIN IMMEDIATE: SQLite's busy
    # handler polls a taken write lock with sleeps growing to 100 ms, so under load a writer waited
    # many times longer than the transaction ahead of it ran (the live-card benchmark's p95 was
    # mostly this). A thread waking on a released Python lock gets it at once; SQLite's own lock
    # still guards against other processes. The lock is let go as the transaction ends (commit or
    # rollback; at the latest when the connection goes back to the pool).
    writer = threading.Lock()

    def release(info: dict) -> None:  # type: ignore[type-arg]
        if info.pop(_WRITER, False):
            writer.release()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # Readers (see `read_only`) begin deferred: in WAL mode they run beside the writer.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
            return
        info = conn.connection.info
        if not info.get(_WRITER) and writer.acquire(timeout=30):  # on timeout SQLite's own wait decides
            info[_WRITER] = True
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(conn):  # type: ignore[no-untyped-def]
        if not conn.invalidated and not conn.closed:
            release(conn.connection.info)

    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        if record is not None:
            release(record.info)


def read_only(engine: Engine) -> Engine:
    """The same engine for transactions that only read: on SQLite they do not take the write lock
    (every other transaction begins IMMEDIATE), so many readers and one writer proceed together."""
    return engine.execution_options(**{READ_ONLY: True})


@event.listens_for(OrmSession, "before_flush")
def _refuse_rewrites(session: OrmSession, _ctx, _instances) -> None:  # type: ignore[no-untyped-def]
    """Versions and audit events are written once; the ORM refuses to change or delete them."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, (EntryVersion, AuditEvent)) and (obj in session.deleted or session.is_modified(obj)):
            raise RuntimeError(f"{type(obj).__name__} rows are immutable")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
