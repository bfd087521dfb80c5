"""The only writes retrieval makes: a log row per search or retrieve, so "what did this agent or bot
see at time T" is answerable, and feedback on what was shown."""
from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from kb import metrics
from kb.errors import NotFound
from kb.models import EntryVersion, Feedback, SearchLog
from kb.timeutil import to_utc
from retrieval.search import SearchResponse


def log_search(*, session: Session, actor: str, role: str, kind: str, response: SearchResponse,
               conversation_id: str | None = None) -> SearchLog:
    row = SearchLog(actor=actor, role=role, kind=kind, query=response.query[:2000], conversation_id=conversation_id,
                    results=[{"entry_id": h.entry_id, "version": h.version, "score": round(h.score, 5)} for h in response.hits],
                    confidence=response.confidence, took_ms=response.took_ms)
    session.add(row)
    metrics.SEARCHES.labels(kind=kind).inc()
    return row


def search_logs(*, session: Session, actor: str | None = None, entry_id: str | None = None,
                since: datetime | None = None, until: datetime | None = None, limit: int = 1000) -> list[SearchLog]:
    """Who searched what and which versions they saw, newest first."""
    query = select(SearchLog)
    if actor:
        query = query.where(SearchLog.actor == actor)
    if since:
        query = query.where(col(SearchLog.ts) >= to_utc(since))
    if until:
        query = query.where(col(SearchLog.ts) <= to_utc(until))
    rows = session.exec(query.order_by(col(SearchLog.ts).desc()).limit(limit)).all()
    if entry_id:
        rows = [r for r in rows if any(x.get("entry_id") == entry_id for x in r.results)]
    return list(rows)


def record_feedback(*, session: Session, actor: str, entry_id: str, version: int, useful: bool,
                    query: str | None = None, conversation_id: str | None = None, comment: str | None = None) -> Feedback:
    """👍/👎 on a shown entry version (which must exist)."""
    exists = session.exec(select(EntryVersion.id).where(EntryVersion.entry_id == entry_id, EntryVersion.number == version)).first()
    if exists is None:
        raise NotFound(f"条目版本不存在 entry {entry_id!r} version {version} not found", details={"entry_id": entry_id, "version": version})
    row = Feedback(actor=actor, entry_id=entry_id, version=version, useful=useful, query=query,
                   conversation_id=conversation_id, comment=comment)
    session.add(row)
    session.flush()
    return row
