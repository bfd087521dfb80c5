"""The outbox worker: applies pending index changes idempotently, in the server process (embedded
default) or as `zhiku worker` on its own. A crash or a down index leaves rows pending; the next run
completes them, and deterministic point ids mean a retry never duplicates a point."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from ingestion.indexer import Indexer
from kb import service
from kb.models import OutboxEvent
from kb.timeutil import utcnow

log = logging.getLogger(__name__)

AfterBatch = Callable[[Session, set[str], datetime], None]  # (session, pack ids, now)
Tick = Callable[[Session, datetime], None]


@dataclass(frozen=True)
class BatchResult:
    events: int
    entries: int
    points: int
    error: str | None = None


class OutboxWorker:
    """Drains the outbox in batches; `tick` runs scheduled work (publishing due packs, SLA escalation)."""

    def __init__(self, *, engine: Engine, indexer: Indexer, batch: int = 200, poll_seconds: float = 1.0,
                 after_batch: AfterBatch | None = None, tick: Tick | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.engine, self.indexer, self.batch, self.poll_seconds = engine, indexer, batch, poll_seconds
        self.after_batch, self.tick, self.on_change = after_batch, tick, on_change
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._run_lock = threading.Lock()

    def pending(self) -> int:
        with Session(self.engine) as session:
            return len(session.exec(select(OutboxEvent.id).where(col(OutboxEvent.processed_at).is_(None))).all())

    def run_once(self, *, now: datetime | None = None, refresh: bool = True) -> BatchResult:
        """Apply one batch of pending events; on failure record the error and leave them pending.

        The database is read and written in short transactions; embedding happens between them, so
        a slow batch never holds a lock that requests wait for. `refresh=False` leaves the search
        vocabulary reload (`on_change`, a scan of every entry) to the caller, once after many batches."""
        with self._run_lock:
            with Session(self.engine, expire_on_commit=False) as session:
                if self.tick is not None:
                    self.tick(session, now or utcnow())
                    session.commit()
                events = session.exec(select(OutboxEvent).where(col(OutboxEvent.processed_at).is_(None))
                                      .order_by(col(OutboxEvent.id)).limit(self.batch)).all()
                entry_ids = {e.entry_id for e in events}
                windows = service.all_windows(session=session, entry_ids=entry_ids) if events else []
                session.commit()
            if not events:
                return BatchResult(0, 0, 0)
            ids = [e.id for e in events]
            try:
                report = self.indexer.apply(windows)
            except Exception as exc:  # the index may be down: keep the rows, count the attempt
                self._record_failure(ids, exc)
                log.warning("outbox batch failed (%d events pending): %s", len(ids), exc)
                return BatchResult(len(ids), len(entry_ids), 0, error=str(exc))
            done = now or utcnow()
            with Session(self.engine) as session:
                rows = session.exec(select(OutboxEvent).where(col(OutboxEvent.id).in_(ids))).all()
                for event in rows:
                    event.processed_at = done
                    session.add(event)
                if self.after_batch is not None:
                    self.after_batch(session, {e.pack_id for e in rows if e.pack_id}, done)
                session.commit()
        if refresh and self.on_change is not None:
            self.on_change()
        return BatchResult(len(ids), len(entry_ids), report.points_written)

    def _record_failure(self, ids: list[int | None], exc: Exception) -> None:
        with Session(self.engine) as session:
            for event in session.exec(select(OutboxEvent).where(col(OutboxEvent.id).in_(ids))).all():
                event.attempts += 1
                event.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                session.add(event)
            session.commit()

    def drain(self, *, max_batches: int = 10_000) -> int:
        """Run batches until nothing is pending (or a batch fails); returns events applied."""
        applied = 0
        for _ in range(max_batches):
            result = self.run_once(refresh=False)
            applied += 0 if result.error else result.events
            if result.events == 0 or result.error:
                break
        if applied and self.on_change is not None:
            self.on_change()
        return applied

    def notify(self) -> None:
        """Wake the background loop now (e.g. right after an approval commits)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="zhiku-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        backoff = self.poll_seconds
        applied = 0  # events applied since the vocabulary was last reloaded
        while not self._stop.is_set():
            try:
                # A large pack is many batches: reload the vocabulary once the backlog is done (or every
                # 20 batches), not after each one; it scans every entry.
                result = self.run_once(refresh=False)
                applied += 0 if result.error else result.events
                more = bool(result.events) and not result.error
                if applied and (not more or applied >= 20 * self.batch) and self.on_change is not None:
                    self.on_change()
                    applied = 0
                backoff = min(backoff * 2, 30.0) if result.error else self.poll_seconds
                if more:
                    continue
            except Exception:  # never let the loop die; the rows stay pending
                log.exception("outbox worker iteration failed")
                backoff = min(backoff * 2, 30.0)
            self._wake.wait(backoff)
            self._wake.clear()
