"""The admin dashboard's view model, and chart data drawn as server-side SVG (no scripts needed).
Every figure comes from a service: workflow freshness and packs, `retrieval.analytics.searches`
for the search log, `retrieval.analytics.quality` for evaluation runs."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from kb.models import EntryVersion
from kb.settings import Settings
from kb.timeutil import to_local, utcnow
from retrieval.analytics.quality import list_eval_runs
from retrieval.analytics.searches import QueryCount, frequent_queries, recent_searches, searches_per_day
from review_workflow import service as workflow
from review_workflow.models import PackState
from web import messages

DAYS = 14
EVAL_METRIC = "hit@5"  # retrieval.evaluate reports hit@1/3/5, mrr@10, ndcg@10


@dataclass
class Bar:
    label: str
    value: float
    text: str
    tone: str = "normal"  # normal | warn | bad | good


@dataclass
class Chart:
    """Horizontal bars; `target` draws a dashed line (e.g. the 24 h freshness goal)."""

    title: str
    bars: list[Bar]
    unit: str = ""
    target: float | None = None
    target_label: str = ""
    row_height: int = 24
    label_width: int = 110
    width: int = 440

    @property
    def scale_max(self) -> float:
        values = [b.value for b in self.bars] + ([self.target * 1.15] if self.target else [])
        return max(values + [1.0])

    @property
    def height(self) -> int:
        return self.row_height * max(len(self.bars), 1) + 24

    @property
    def plot_width(self) -> int:
        return self.width - self.label_width - 60

    def bar_width(self, value: float) -> float:
        return round(self.plot_width * value / self.scale_max, 1)

    @property
    def target_x(self) -> float | None:
        return None if self.target is None else self.label_width + self.bar_width(self.target)


@dataclass
class DashboardView:
    freshness: dict[str, Any]
    freshness_chart: Chart
    states_chart: Chart
    searches_chart: Chart
    zero_results: list[QueryCount]
    low_confidence: list[QueryCount]
    top_questions: list[QueryCount]
    stale: list[EntryVersion]
    eval_runs: list[dict[str, Any]]
    eval_chart: Chart | None
    totals: dict[str, int] = field(default_factory=dict)


def eval_history(*, session: Session, limit: int = 10) -> list[dict[str, Any]]:
    """The latest retrieval evaluation runs, oldest first, as {ts, dataset, metrics}."""
    runs = list_eval_runs(session=session, limit=limit)
    return [{"ts": r.ts, "dataset": r.dataset, "metrics": r.metrics} for r in runs]


# ---------------------------------------------------------------- the view


def dashboard_view(*, session: Session, settings: Settings, now: datetime | None = None) -> DashboardView:
    """Everything the admin dashboard shows, from the workflow and log services."""
    now = now or utcnow()
    fresh = workflow.freshness(session=session)
    target = float(settings.sla_hours)
    fresh_bars = [
        Bar("提交→上线 p50", fresh["submit_to_live_hours_p50"] or 0.0, _hours(fresh["submit_to_live_hours_p50"])),
        Bar("提交→上线 p95", fresh["submit_to_live_hours_p95"] or 0.0, _hours(fresh["submit_to_live_hours_p95"])),
    ]
    for bar in fresh_bars:
        bar.tone = "bad" if bar.value > target else "good"
    packs = workflow.list_packs(session=session)
    by_state = Counter(p.state for p in packs)
    overdue = sum(1 for p in packs if workflow.is_overdue(p, now))
    states = [Bar(messages.STATE_LABELS[s.value], by_state.get(s.value, 0), str(by_state.get(s.value, 0)),
                  "warn" if s == PackState.SUBMITTED and overdue else "normal") for s in PackState]
    logs = recent_searches(session=session, days=DAYS, now=now)
    per_day = searches_per_day(logs, days=DAYS, now=now)
    runs = eval_history(session=session)
    eval_chart = None
    if runs:
        eval_chart = Chart(f"检索评测 {EVAL_METRIC}（最近 {len(runs)} 次）",
                           [Bar(f"{to_local(r['ts']):%m-%d} {r['dataset'][:8]}", float(r["metrics"].get(EVAL_METRIC) or 0.0),  # type: ignore[str-format]
                                f"{float(r['metrics'].get(EVAL_METRIC) or 0.0):.3f}") for r in runs], label_width=130)
    return DashboardView(
        freshness=fresh,
        freshness_chart=Chart("更新时效（小时）", fresh_bars, unit="小时", target=target,
                              target_label=f"目标 {target:g} 小时"),
        states_chart=Chart("更新包状态分布", states),
        searches_chart=Chart(f"近 {DAYS} 天每日检索量", [Bar(f"{d:%m-%d}", n, str(n)) for d, n in per_day],
                             row_height=18, label_width=50),
        zero_results=frequent_queries(logs, kind="zero"),
        low_confidence=frequent_queries(logs, kind="low"),
        top_questions=frequent_queries(logs),
        stale=workflow.stale_entries(session=session, today=to_local(now).date()),  # type: ignore[union-attr]
        eval_runs=runs,
        eval_chart=eval_chart,
        totals={"packs": len(packs), "overdue": overdue, "searches": len(logs),
                "zero": sum(1 for log in logs if not log.results)},
    )


def _hours(value: float | None) -> str:
    return "暂无数据" if value is None else f"{value:.2f} 小时"
