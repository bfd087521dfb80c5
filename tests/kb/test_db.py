"""SQLite's writers queue on a lock of the process before BEGIN IMMEDIATE; the lock is let go when the
transaction ends, whichever way it ends."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from kb.db import make_engine, read_only


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


def count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM t")).scalar_one()


def test_many_concurrent_writers_all_commit(engine):
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for _ in range(10):
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and count(engine) == 160


def test_the_lock_is_released_by_commit_rollback_and_error(engine):
    with engine.connect() as conn:  # one connection, several transactions: each one releases
        with conn.begin():
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with conn.begin() as tx:
            conn.execute(text("INSERT INTO t VALUES (2)"))
            tx.rollback()
        with pytest.raises(RuntimeError), conn.begin():
            conn.execute(text("INSERT INTO t VALUES (3)"))
            raise RuntimeError("boom")
        done = threading.Event()

        def other_writer() -> None:  # another thread writes while this connection is still checked out
            with engine.begin() as other:
                other.execute(text("INSERT INTO t VALUES (4)"))
            done.set()

        threading.Thread(target=other_writer).start()
        assert done.wait(10), "a finished transaction still held the write lock"
    assert count(engine) == 2


def test_readers_never_wait_for_a_writer(engine):
    with engine.begin() as writer:
        writer.execute(text("INSERT INTO t VALUES (1)"))
        seen: list[int] = []

        def read() -> None:
            with read_only(engine).connect() as conn, conn.begin():
                seen.append(conn.execute(text("SELECT count(*) FROM t")).scalar_one())

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(10)
        assert seen == [0]  # read beside the open write transaction, before its commit
