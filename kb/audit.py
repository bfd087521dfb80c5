"""The append-only, hash-chained audit log: append in the caller's transaction, verify the whole chain."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from kb.models import AuditEvent, AuditHead
from kb.timeutil import utcnow

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, Chinese kept as written."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def content_hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def _link_fields(event: AuditEvent) -> dict[str, Any]:
    ts: datetime = event.ts
    return {
        "id": event.id,
        "ts": ts.isoformat(timespec="microseconds"),
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "before_hash": event.before_hash,
        "after_hash": event.after_hash,
        "detail": event.detail,
    }


def link_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256((prev_hash + canonical_json(_link_fields(event))).encode("utf-8")).hexdigest()


def append(
    *,
    session: Session,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before_hash: str | None = None,
    after_hash: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction (it commits or rolls back with it)."""
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
    event = AuditEvent(
        id=head.seq + 1,
        ts=utcnow(),
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        before_hash=before_hash,
        after_hash=after_hash,
        detail=detail or {},
        prev_hash=head.hash,
        hash="",
    )
    event.hash = link_hash(head.hash, event)
    head.seq, head.hash = event.id, event.hash
    session.add(event)
    session.add(head)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken: int | None = None
    reason: str | None = None


def verify(*, session: Session, batch: int = 5000) -> ChainReport:
    """Recompute every link; report the first event whose id, back-link or hash does not hold."""
    prev_hash, expected_id, checked, last_id = GENESIS, 1, 0, 0
    while True:
        rows = session.exec(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(col(AuditEvent.id)).limit(batch),
            execution_options={"populate_existing": True},  # read the rows as stored, not cached objects
        ).all()
        if not rows:
            break
        for event in rows:
            if event.id != expected_id:
                return ChainReport(False, checked, expected_id, f"event {expected_id} is missing")
            if event.prev_hash != prev_hash:
                return ChainReport(False, checked, event.id, "back-link does not match the previous event")
            if link_hash(prev_hash, event) != event.hash:
                return ChainReport(False, checked, event.id, "content does not match its hash")
            prev_hash, expected_id, checked, last_id = event.hash, event.id + 1, checked + 1, event.id
    head = session.get(AuditHead, 1, populate_existing=True)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq != checked or head_hash != prev_hash:
        return ChainReport(False, checked, checked + 1, "the chain ends before its recorded head: events were deleted")
    return ChainReport(True, checked)


def search_events(*, session: Session, entry_id: str | None = None, actor: str | None = None,
                  action: str | None = None, since: datetime | None = None, until: datetime | None = None,
                  limit: int = 10_000) -> list[AuditEvent]:
    """Audit events matching every given filter, oldest first."""
    query = select(AuditEvent)
    if entry_id:
        query = query.where(AuditEvent.object_id == entry_id)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(col(AuditEvent.action).startswith(action))
    if since:
        query = query.where(col(AuditEvent.ts) >= since)
    if until:
        query = query.where(col(AuditEvent.ts) <= until)
    return list(session.exec(query.order_by(col(AuditEvent.id)).limit(limit)).all())


CSV_COLUMNS = ("id", "ts", "actor", "action", "object_type", "object_id", "before_hash", "after_hash", "detail", "hash")


def events_csv(events: list[AuditEvent]) -> str:
    """Events as CSV with a BOM, so that Excel opens the Chinese text correctly (API and web export)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for e in events:
        writer.writerow([e.id, e.ts.isoformat(), e.actor, e.action, e.object_type, e.object_id, e.before_hash or "",
                         e.after_hash or "", canonical_json(e.detail), e.hash])
    return "\ufeff" + buffer.getvalue()
