"""Time windows and ISO weeks in bank-local time (a week starts Monday 00:00 Asia/Shanghai)."""
from __future__ import annotations

from datetime import datetime, timedelta

from kb.errors import ValidationFailed
from kb.timeutil import BANK_TZ, to_utc, utcnow


def iso_week(ts: datetime) -> str:
    """The ISO week of a stored (UTC) time in bank-local time, e.g. `2026-W07`."""
    local = (to_utc(ts) or ts).astimezone(BANK_TZ)
    year, week, _ = local.isocalendar()
    return f"{year}-W{week:02d}"


def weeks_between(since: datetime, until: datetime) -> list[str]:
    """Every ISO week touched by [since, until], oldest first."""
    weeks: list[str] = []
    day = since
    while day <= until:
        week = iso_week(day)
        if week not in weeks:
            weeks.append(week)
        day += timedelta(days=1)
    last = iso_week(until)
    if last not in weeks:
        weeks.append(last)
    return weeks


def window(*, days: float, until: datetime | None = None) -> tuple[datetime, datetime]:
    """(since, until) covering the last `days` days up to `until` (default now), both aware UTC."""
    end = to_utc(until) or utcnow()
    try:
        return end - timedelta(days=days), end
    except OverflowError:
        raise ValidationFailed("统计窗口超出可表示的日期范围 window outside the representable dates",
                               errors=[{"field": "until", "message": "out of range"}]) from None
