"""Change notices, feedback, the audit log (JSON or CSV) and its verification, search logs."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import Auditors, FeedbackGivers, NoticeReaders, RuntimeDep, SessionDep
from api.schemas import FeedbackIn
from kb import audit, service
from kb.models import AuditEventPublic, ChangeNoticePublic, SearchLog
from kb.timeutil import utcnow
from retrieval.logs import record_feedback, search_logs

router = APIRouter(tags=["records"])


@router.get("/notices", response_model=list[ChangeNoticePublic])
def notices(caller: NoticeReaders, runtime: RuntimeDep, session: SessionDep,
            since: datetime | None = None) -> list[ChangeNoticePublic]:
    """What changed since `since` (default: the notice window, 7 days): 「起购金额：1万元 → 1元」."""
    start = since or utcnow() - timedelta(days=runtime.settings.notice_days)
    return [ChangeNoticePublic.model_validate(n, from_attributes=True) for n in service.notices_since(session=session, since=start)]


@router.post("/feedback", status_code=201)
def feedback(body: FeedbackIn, caller: FeedbackGivers, session: SessionDep) -> dict[str, int | None]:
    """👍/👎 on an entry version an agent or the bot was shown."""
    row = record_feedback(session=session, actor=caller.actor.username, **body.model_dump())
    return {"id": row.id}


@router.get("/audit", response_model=list[AuditEventPublic])
def audit_events(
    caller: Auditors, session: SessionDep, entry_id: str | None = None, actor: str | None = None,
    action: str | None = None, from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None, format: Literal["json", "csv"] = "json",
) -> list[AuditEventPublic] | Response:
    """Who changed, approved and published what, when (filter by entry, actor, action, time; CSV for Excel)."""
    events = [AuditEventPublic.model_validate(e, from_attributes=True) for e in audit.search_events(
        session=session, entry_id=entry_id, actor=actor, action=action, since=from_, until=to)]
    if format == "json":
        return events
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "ts", "actor", "action", "object_type", "object_id", "before_hash", "after_hash", "detail", "hash"])
    for e in events:
        writer.writerow([e.id, e.ts.isoformat(), e.actor, e.action, e.object_type, e.object_id, e.before_hash or "",
                         e.after_hash or "", audit.canonical_json(e.detail), e.hash])
    # A BOM so that Excel opens the Chinese text correctly.
    return Response("\ufeff" + buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="zhiku-audit.csv"'})


@router.get("/audit/verify")
def audit_verify(caller: Auditors, session: SessionDep) -> dict[str, object]:
    """Recompute the hash chain: `{ok, checked, first_broken?}`."""
    report = audit.verify(session=session)
    body: dict[str, object] = {"ok": report.ok, "checked": report.checked}
    if not report.ok:
        body.update(first_broken=report.first_broken, reason=report.reason)
    return body


@router.get("/search-logs", response_model=list[SearchLog])
def logs(caller: Auditors, session: SessionDep, actor: str | None = None, entry_id: str | None = None,
         from_: Annotated[datetime | None, Query(alias="from")] = None, to: datetime | None = None) -> list[SearchLog]:
    """What an agent or bot searched and which entry versions it was shown, in a time range."""
    return search_logs(session=session, actor=actor, entry_id=entry_id, since=from_, until=to)
