"""Freshness and workflow health per ISO week: submit→live and approve→searchable p50/p95 against the
target, overdue packs, stale entries, and the share of changes that went through the compliance lint."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from sqlmodel import Session, col, select

from kb.models import EntryVersion
from kb.timeutil import utcnow
from retrieval.analytics.models import (
    FreshnessReport,
    LintCoverage,
    OverduePack,
    StaleEntry,
    WeekFreshness,
)
from retrieval.analytics.period import iso_week, weeks_between, window
from review_workflow import service as workflow
from review_workflow.models import Review, UpdatePack


def _rounded(values: list[float], q: int, digits: int) -> float | None:
    value = workflow.percentile(sorted(values), q)
    return None if value is None else round(value, digits)


def weekly_freshness(*, session: Session, days: float = 56, until: datetime | None = None,
                     target_hours: float = workflow.DEFAULT_SLA_HOURS) -> list[WeekFreshness]:
    """Per ISO week of becoming searchable: packs, submit→live hours and approve→searchable seconds p50/p95,
    and the share live within `target_hours` of submission (oldest week first)."""
    since, end = window(days=days, until=until)
    packs = session.exec(select(UpdatePack).where(col(UpdatePack.searchable_at) >= since,
                                                  col(UpdatePack.searchable_at) <= end)).all()
    live: dict[str, list[float]] = defaultdict(list)
    searchable: dict[str, list[float]] = defaultdict(list)
    count: dict[str, int] = defaultdict(int)
    for p in packs:
        if p.searchable_at is None:
            continue
        week = iso_week(p.searchable_at)
        count[week] += 1
        if p.submitted_at:
            live[week].append((p.searchable_at - p.submitted_at).total_seconds() / 3600)
        if p.approved_at:
            searchable[week].append((p.searchable_at - max(p.approved_at, p.effective_at or p.approved_at)).total_seconds())
    return [WeekFreshness(
        week=w, packs=count[w],
        submit_to_live_hours_p50=_rounded(live[w], 50, 3), submit_to_live_hours_p95=_rounded(live[w], 95, 3),
        approve_to_searchable_seconds_p50=_rounded(searchable[w], 50, 1),
        approve_to_searchable_seconds_p95=_rounded(searchable[w], 95, 1),
        within_target=round(sum(1 for h in live[w] if h <= target_hours) / len(live[w]), 4) if live[w] else None,
    ) for w in weeks_between(since, end)]


def overdue_packs(*, session: Session, now: datetime | None = None) -> list[OverduePack]:
    """Submitted packs past their SLA due time, most overdue first."""
    now = now or utcnow()
    return [OverduePack(id=p.id, title=p.title, submitter=p.submitter, submitted_at=p.submitted_at, sla_due_at=p.sla_due_at,
                        hours_overdue=round((now - (p.sla_due_at or now)).total_seconds() / 3600, 2))
            for p in workflow.review_queue(session=session, now=now) if workflow.is_overdue(p, now)]


def stale(*, session: Session, today: date | None = None) -> list[StaleEntry]:
    """Entries in force whose `review_by` date has passed, oldest first."""
    return [StaleEntry(entry_id=v.entry_id, title=v.title, version=v.number, review_by=v.review_by)
            for v in workflow.stale_entries(session=session, today=today) if v.review_by is not None]


def lint_coverage(*, session: Session, days: float = 28, until: datetime | None = None, limit: int = 50) -> LintCoverage:
    """Of the versions written in the window, how many came from a pack whose approval ran the lint.

    Evidence, not assumption: a version counts as checked only when its pack has an approving review
    that stored the rules version it linted with. Versions written outside a pack (demo import,
    rollback, direct API writes) are listed as unchecked with the reason."""
    since, end = window(days=days, until=until)
    versions = session.exec(select(EntryVersion.entry_id, EntryVersion.number, EntryVersion.author, EntryVersion.pack_id)
                            .where(col(EntryVersion.created_at) >= since, col(EntryVersion.created_at) <= end)
                            .order_by(col(EntryVersion.created_at))).all()
    pack_ids = {p for *_, p in versions if p}
    linted = set(session.exec(select(Review.pack_id).where(col(Review.pack_id).in_(list(pack_ids)), Review.decision == "approve",
                                                          Review.rules_version != "")).all()) if pack_ids else set()
    unchecked = [{"entry_id": e, "version": n, "author": a, "pack_id": p,
                  "reason": "无更新包（导入 / 回滚 / 直接写入） no update pack" if not p else "审批记录缺少合规检查 no linted approval"}
                 for e, n, a, p in versions if p not in linted]
    checked = len(versions) - len(unchecked)
    return LintCoverage(versions=len(versions), checked=checked,
                        share=round(checked / len(versions), 4) if versions else None, unchecked=unchecked[:limit])


def freshness_report(*, session: Session, days: float = 56, until: datetime | None = None,
                     target_hours: float = workflow.DEFAULT_SLA_HOURS) -> FreshnessReport:
    """Everything operations watch about freshness in one object (the dashboard's freshness panel)."""
    end = until or utcnow()
    return FreshnessReport(
        target_hours=target_hours,
        weeks=weekly_freshness(session=session, days=days, until=end, target_hours=target_hours),
        overdue=overdue_packs(session=session, now=end),
        stale=stale(session=session, today=end.date()),
        lint=lint_coverage(session=session, days=days, until=end),
    )
