"""`zhiku report weekly`: a Markdown or HTML report for managers with PNG charts beside it."""
from __future__ import annotations

import html
import logging
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from kb.timeutil import to_local, utcnow
from retrieval.analytics import messages
from retrieval.analytics.gaps import find_gaps
from retrieval.analytics.models import EvalRunPublic, FreshnessReport, GapsPublic
from retrieval.analytics.period import iso_week
from retrieval.analytics.quality import list_eval_runs
from retrieval.analytics.usage import feedback_ranking, top_questions, unused_entries, weekly_usage
from retrieval.analytics.workflow_metrics import freshness_report
from retrieval.embedding import Embedder

# Fonts with Chinese glyphs, first found wins; without any the charts still render (boxes for Han).
CJK_FONTS = ["Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei",
             "Microsoft YaHei", "PingFang SC", "DejaVu Sans"]


@dataclass
class ReportFiles:
    """What `weekly_report` wrote: the report and its chart images."""

    report: Path
    images: list[Path] = field(default_factory=list)


@dataclass
class _Data:
    now: datetime
    usage: list[dict[str, Any]]
    gaps: GapsPublic
    top: list[Any]
    feedback: list[Any]
    unused: list[Any]
    freshness: FreshnessReport
    runs: list[EvalRunPublic]
    unused_days: int


def _collect(session: Session, embedder: Embedder | None, now: datetime, weeks: int, threshold: float | None,
             unused_days: int) -> _Data:
    days = weeks * 7
    return _Data(
        now=now,
        usage=weekly_usage(session=session, days=days, until=now),
        gaps=find_gaps(session=session, embedder=embedder, days=days, until=now, threshold=threshold, limit=10),
        top=top_questions(session=session, embedder=embedder, days=7, until=now, per_week=10, threshold=threshold),
        feedback=feedback_ranking(session=session, days=days, until=now, limit=10),
        unused=unused_entries(session=session, days=unused_days, until=now),
        freshness=freshness_report(session=session, days=days, until=now),
        runs=list_eval_runs(session=session, limit=200),
        unused_days=unused_days,
    )


# ---------------------------------------------------------------- charts


def _figure():  # type: ignore[no-untyped-def]
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend state

    return Figure(figsize=(8, 3.6), dpi=110, layout="constrained")


def _charts(data: _Data, out_dir: Path, stem: str) -> list[Path]:
    import matplotlib

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    paths: list[Path] = []
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": CJK_FONTS, "axes.unicode_minus": False}), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Glyph … missing" where no CJK font is installed
        weeks = [u["week"] for u in data.usage]
        fig = _figure()
        ax = fig.subplots()
        ax.bar(weeks, [u["searches"] for u in data.usage], color="#4e79a7", label=messages.CHART_SEARCHES)
        ax.set_title(messages.CHART_USAGE)
        ax.tick_params(axis="x", labelrotation=45)
        share = ax.twinx()
        share.plot(weeks, [u["low_share"] if u["low_share"] is not None else float("nan") for u in data.usage],
                   color="#e15759", marker="o", label=messages.CHART_LOW_SHARE)
        share.set_ylim(0, 1)
        fig.legend(loc="upper left")
        paths.append(_save(fig, out_dir / f"{stem}-usage.png"))

        fw = data.freshness.weeks
        fig = _figure()
        ax = fig.subplots()
        nan = float("nan")
        ax.plot([w.week for w in fw], [w.submit_to_live_hours_p50 if w.submit_to_live_hours_p50 is not None else nan for w in fw],
                marker="o", label="p50")
        ax.plot([w.week for w in fw], [w.submit_to_live_hours_p95 if w.submit_to_live_hours_p95 is not None else nan for w in fw],
                marker="o", label="p95")
        ax.axhline(data.freshness.target_hours, color="#e15759", linestyle="--", label=messages.CHART_TARGET)
        ax.set_title(messages.CHART_FRESHNESS)
        ax.tick_params(axis="x", labelrotation=45)
        ax.legend()
        paths.append(_save(fig, out_dir / f"{stem}-freshness.png"))

        fig = _figure()
        ax = fig.subplots()
        by_dataset: dict[str, list[EvalRunPublic]] = {}
        for run in data.runs:
            by_dataset.setdefault(run.dataset, []).append(run)
        for dataset, runs in sorted(by_dataset.items()):
            ts = [to_local(r.ts) for r in runs]
            ax.plot(ts, [r.metrics.get("hit@1", nan) for r in runs], marker="o", label=f"{dataset} hit@1")
            ax.plot(ts, [r.metrics.get("mrr@10", nan) for r in runs], marker=".", linestyle=":", label=f"{dataset} MRR@10")
        ax.set_ylim(0, 1.05)
        ax.set_title(messages.CHART_QUALITY)
        if by_dataset:
            ax.legend(fontsize="small")
        fig.autofmt_xdate()
        paths.append(_save(fig, out_dir / f"{stem}-quality.png"))

        fig = _figure()
        ax = fig.subplots()
        top = list(reversed(data.gaps.data[:10]))
        ax.barh([g.representative[:18] for g in top], [g.count for g in top], color="#f28e2b")
        ax.set_title(messages.CHART_GAPS)
        paths.append(_save(fig, out_dir / f"{stem}-gaps.png"))
    return paths


def _save(fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    fig.savefig(path, format="png")
    return path


# ---------------------------------------------------------------- text


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return [messages.REPORT_NONE, ""]
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _markdown(data: _Data, images: list[Path]) -> str:
    local = to_local(data.now)
    since = to_local(data.gaps.since)
    lines = [f"# {messages.REPORT_TITLE.format(week=iso_week(data.now))}", "",
             messages.REPORT_GENERATED.format(ts=f"{local:%Y-%m-%d %H:%M}", since=f"{since:%Y-%m-%d}", until=f"{local:%Y-%m-%d}"), ""]
    usage_img, fresh_img, quality_img, gaps_img = (p.name for p in images)
    lines += [f"## {messages.REPORT_USAGE}", "", f"![{messages.CHART_USAGE}]({usage_img})", ""]
    lines += _table(["周 week", "检索", "低置信度", "占比", "卡片展示", "👍", "👎"],
                    [[u["week"], u["searches"], u["low_confidence"], _pct(u["low_share"]), u["cards"], u["up"], u["down"]]
                     for u in data.usage])
    lines += [f"## {messages.REPORT_GAPS}", "", f"![{messages.CHART_GAPS}]({gaps_img})", ""]
    lines += _table(["缺口", "次数", "说法", "示例", "草稿"],
                    [[g.representative, g.count, g.distinct, "；".join(g.examples[:3]), g.draft_pack_id or ""] for g in data.gaps.data])
    this_week = data.top[0] if data.top else None
    lines += [f"## {messages.REPORT_TOP}" + (f"（{this_week.week}）" if this_week else ""), ""]
    lines += _table(["问题", "次数", "其他说法"],
                    [[q.question, q.count, "；".join(q.variants[1:3])] for q in (this_week.questions if this_week else [])])
    lines += [f"## {messages.REPORT_FEEDBACK}", ""]
    lines += _table(["条目", "标题", "👎", "👍", "差评率", "最近意见"],
                    [[f.entry_id, f.title, f.down, f.up, _pct(f.down_share), "；".join(f.comments[:2])] for f in data.feedback])
    lines += [f"## {messages.REPORT_UNUSED.format(days=data.unused_days)}（{len(data.unused)}）", ""]
    lines += _table(["条目", "标题", "分类", "版本"], [[u.entry_id, u.title, u.category, u.version] for u in data.unused[:30]])
    fr = data.freshness
    lines += [f"## {messages.REPORT_FRESHNESS}", "", f"![{messages.CHART_FRESHNESS}]({fresh_img})", ""]
    lines += _table(["周 week", "更新包", "提交→上线 p50 (h)", "p95 (h)", "审批→可检索 p50 (s)", "p95 (s)", f"{fr.target_hours:g} h 内占比"],
                    [[w.week, w.packs, _num(w.submit_to_live_hours_p50), _num(w.submit_to_live_hours_p95),
                      _num(w.approve_to_searchable_seconds_p50), _num(w.approve_to_searchable_seconds_p95), _pct(w.within_target)]
                     for w in fr.weeks])
    lines += [f"- {messages.REPORT_LINT.format(checked=fr.lint.checked, versions=fr.lint.versions, share=_pct(fr.lint.share))}",
              f"- {messages.REPORT_OVERDUE.format(n=len(fr.overdue))}", f"- {messages.REPORT_STALE.format(n=len(fr.stale))}", ""]
    lines += [f"## {messages.REPORT_QUALITY}", "", f"![{messages.CHART_QUALITY}]({quality_img})", ""]
    lines += _table(["时间", "数据集", "n", "hit@1", "hit@5", "MRR@10", "版本"],
                    [[f"{to_local(r.ts):%Y-%m-%d %H:%M}", r.dataset, r.n, r.metrics.get("hit@1", ""), r.metrics.get("hit@5", ""),
                      r.metrics.get("mrr@10", ""), r.app_version] for r in data.runs[-15:]])
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _html(markdown: str, title: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (f"<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;font-size:.9em}"
            "img{max-width:100%}</style></head><body>\n" + body + "</body></html>\n")


def weekly_report(*, session: Session, embedder: Embedder | None, out_dir: Path, fmt: str = "md",
                  now: datetime | None = None, weeks: int = 8, threshold: float | None = None,
                  unused_days: int = 90) -> ReportFiles:
    """Write `zhiku-weekly-<ISO week>.md|html` and its four PNG charts into `out_dir`; returns the paths."""
    if fmt not in ("md", "html"):
        from kb.errors import ValidationFailed

        raise ValidationFailed(f"未知格式 unknown format {fmt!r}: md | html", errors=[{"field": "format", "message": fmt}])
    now = now or utcnow()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"zhiku-weekly-{iso_week(now)}"
    data = _collect(session, embedder, now, weeks, threshold, unused_days)
    images = _charts(data, out_dir, stem)
    text = _markdown(data, images)
    path = out_dir / f"{stem}.{fmt}"
    title = messages.REPORT_TITLE.format(week=iso_week(now))
    path.write_text(_html(text, title) if fmt == "html" else text + "\n", encoding="utf-8")
    return ReportFiles(report=path, images=images)
