"""Time in Zhiku: aware UTC everywhere (SQLModel's UTCDateTime columns); naive input is bank-local time."""
from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

BANK_TZ = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    """Now as an aware UTC datetime, the form every DB column holds."""
    return datetime.now(UTC)


def to_utc(value: datetime | date | str | None) -> datetime | None:
    """Normalise a date, datetime or ISO string to aware UTC; naive values are bank-local time."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if value.tzinfo is None:
        value = value.replace(tzinfo=BANK_TZ)
    return value.astimezone(UTC)


def to_local(value: datetime | None) -> datetime | None:
    """A stored time as bank-local time, for display."""
    if value is None:
        return None
    return value.astimezone(BANK_TZ)


def epoch(value: datetime | None, default: int) -> int:
    """Whole seconds since 1970, for index payloads; None gives the default (an open end)."""
    if value is None:
        return default
    return int(value.timestamp())
