"""Prometheus metric objects shared by every layer (scraped at ``GET /metrics``).

Import and count, e.g. ``from kb import metrics; metrics.CARD_PUSHES.labels(kind="update").inc()``.
The objects live in prometheus-client's default registry, created once at import; they never
raise and cost a lock and an add, so call them on the hot path without guards.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "REQUEST_LATENCY",
    "SEARCHES",
    "CARD_PUSHES",
    "PUBLISHES",
    "LINT_FINDINGS",
    "OUTBOX_PENDING",
    "OUTBOX_LAG",
]

# Buckets from 5 ms to 10 s: searches sit around 20–300 ms, uploads and publishes reach seconds.
REQUEST_LATENCY = Histogram(
    "zhiku_http_request_duration_seconds",
    "HTTP request latency per route template",
    labelnames=("method", "route", "status"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SEARCHES = Counter(
    "zhiku_searches",
    "Searches served (kind: search | retrieve)",
    labelnames=("kind",),
)
CARD_PUSHES = Counter(
    "zhiku_card_pushes",
    "Knowledge cards pushed to agents (kind: shown | update | pin | dismiss …)",
    labelnames=("kind",),
)
PUBLISHES = Counter(
    "zhiku_publishes",
    "Changes published (kind: publish | schedule | scheduled (came into force) | publish_now | rollback)",
    labelnames=("kind",),
)
LINT_FINDINGS = Counter(
    "zhiku_lint_findings",
    "Compliance lint findings raised, by flag",
    labelnames=("flag",),
)
# Set at scrape time from the outbox table (see retrieval.analytics.service.refresh_gauges).
OUTBOX_PENDING = Gauge("zhiku_outbox_pending", "Outbox rows not yet applied to the index")
OUTBOX_LAG = Gauge(
    "zhiku_outbox_lag_seconds", "Age of the oldest outbox row not yet applied to the index"
)


def refresh_outbox(*, session) -> None:  # type: ignore[no-untyped-def]
    """Set the outbox gauges from the table (called at scrape time, so they are never stale)."""
    from sqlmodel import col, func, select

    from kb.models import OutboxEvent
    from kb.timeutil import utcnow

    pending, oldest = session.exec(select(func.count(), func.min(OutboxEvent.created_at))
                                   .where(col(OutboxEvent.processed_at).is_(None))).one()
    OUTBOX_PENDING.set(pending or 0)
    if oldest is None:
        OUTBOX_LAG.set(0)
        return
    if oldest.tzinfo is None:  # SQLite hands back naive UTC from a bare aggregate
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    OUTBOX_LAG.set(max(0.0, (utcnow() - oldest).total_seconds()))
