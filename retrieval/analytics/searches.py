"""The search log over a recent window, counted for the admin dashboard: searches per bank-local
day and the questions asked most, found nothing, or answered below the hand-off line — grouped by
their normalised text (script, width, case), cheap enough for every dashboard load. The analytics
API groups by meaning instead (`gaps.find_gaps`, `usage.top_questions`)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from sqlmodel import Session

from kb.models import SearchLog
from kb.timeutil import to_local, utcnow
from retrieval.analytics.gaps import LOW_CONFIDENCE
from retrieval.logs import search_logs
from retrieval.text import normalize

LOG_LIMIT = 20_000


@dataclass
class QueryCount:
    query: str  # as last asked
    count: int
    last: datetime | None = None
    confidence: float | None = None


def recent_searches(*, session: Session, days: int, now: datetime | None = None) -> list[SearchLog]:
    """The last `days` days of the search log (at most LOG_LIMIT rows)."""
    now = now or utcnow()
    return search_logs(session=session, since=now - timedelta(days=days), limit=LOG_LIMIT)


def searches_per_day(logs: Iterable[SearchLog], *, days: int, now: datetime | None = None) -> list[tuple[date, int]]:
    """Searches (agents' and the bot's) per bank-local day, oldest first, days without any included."""
    today = to_local(now or utcnow()).date()  # type: ignore[union-attr]
    counts = Counter(to_local(log.ts).date() for log in logs)  # type: ignore[union-attr]
    return [(today - timedelta(days=n), counts.get(today - timedelta(days=n), 0)) for n in range(days - 1, -1, -1)]


def frequent_queries(logs: Iterable[SearchLog], *, kind: Literal["all", "zero", "low"] = "all", limit: int = 10,
                     low_confidence: float = LOW_CONFIDENCE) -> list[QueryCount]:
    """The questions asked most: all of them, those that found nothing (knowledge gaps), or those
    answered below the hand-off confidence."""
    if kind == "zero":
        logs = [log for log in logs if not log.results]
    elif kind == "low":
        logs = [log for log in logs if log.results and (log.confidence or 0.0) < low_confidence]
    groups: dict[str, QueryCount] = {}
    for log in logs:
        entry = groups.setdefault(normalize(log.query), QueryCount(log.query, 0, log.ts, log.confidence))
        entry.count += 1
        if entry.last is None or log.ts > entry.last:
            entry.last, entry.query = log.ts, log.query
    return sorted(groups.values(), key=lambda q: (-q.count, q.query))[:limit]
