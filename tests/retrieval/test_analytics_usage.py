"""Frequent questions per week, 👎 ranking and never-shown entries, from generated logs."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kb import service as kb
from kb.models import Feedback
from kb.timeutil import utcnow
from retrieval.analytics import feedback_ranking, top_questions, unused_entries, weekly_usage
from retrieval.analytics.period import iso_week
from retrieval.embedding import HashingEmbedder
from retrieval.models import CardImpression
from tests.factories import entry_data
from tests.retrieval.analytics_logs import log


def test_top_questions_per_week_normalised(session):
    now = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # a Wednesday noon in Shanghai: "5 minutes ago" is this week
    last_week = now - timedelta(days=7)
    for q in ("房贷利率", "房贷利率？", "房貸利率", "LPR是什么"):
        log(session, q, now - timedelta(minutes=5), confidence=0.9)
    for q in ("LPR是什么", "lpr是什么", "房贷利率"):
        log(session, q, last_week, confidence=0.9)
    session.commit()
    weeks = top_questions(session=session, embedder=HashingEmbedder(), days=14, until=now, threshold=0.01)
    by_week = {w.week: w for w in weeks}
    assert weeks[0].week == iso_week(now)  # newest first
    this = by_week[iso_week(now)]
    assert this.total == 4
    assert [(q.question, q.count) for q in this.questions] == [("房贷利率", 3), ("LPR是什么", 1)]
    assert set(this.questions[0].variants) == {"房贷利率", "房贷利率？", "房貸利率"}
    if iso_week(last_week) != iso_week(now):
        assert [(q.question, q.count) for q in by_week[iso_week(last_week)].questions][0][1] == 2
    usage = {u["week"]: u for u in weekly_usage(session=session, days=14, until=now)}
    assert usage[iso_week(now)]["searches"] == 4 and usage[iso_week(now)]["low_confidence"] == 0


def test_feedback_ranking_and_unused_entries(session):
    a = kb.create_entry(session=session, data=entry_data(), actor="expert")
    b = kb.create_entry(session=session, data=entry_data(), actor="expert")
    c = kb.create_entry(session=session, data=entry_data(), actor="expert")
    d = kb.create_entry(session=session, data=entry_data(), actor="expert")
    session.commit()
    now = utcnow()
    for useful, entry in ((False, a), (False, a), (True, a), (False, b), (True, b), (True, b)):
        session.add(Feedback(ts=now, actor="agent", entry_id=entry.entry_id, version=1, useful=useful,
                             comment="利率过时" if not useful else None))
    # Looking from 100 days ahead, every entry is older than the 90-day window.
    later = now + timedelta(days=100)
    log(session, "稳享理财", later - timedelta(days=3), results=[{"entry_id": a.entry_id, "version": 1, "score": 0.9}])
    log(session, "老日志", later - timedelta(days=95), results=[{"entry_id": b.entry_id, "version": 1, "score": 0.9}])
    session.add(CardImpression(ts=later - timedelta(days=1), conversation_id="c1", channel="phone", entry_id=c.entry_id,
                               version=1, category="product"))
    session.commit()

    ranking = feedback_ranking(session=session, days=7, until=now + timedelta(minutes=1))
    assert [(f.entry_id, f.down, f.up) for f in ranking] == [(a.entry_id, 2, 1), (b.entry_id, 1, 2)]
    assert ranking[0].down_share == round(2 / 3, 4) and ranking[0].comments == ["利率过时", "利率过时"]
    assert ranking[0].title == a.title

    unused = {u.entry_id for u in unused_entries(session=session, days=90, until=later)}
    assert unused == {b.entry_id, d.entry_id}  # a searched, c shown as a card; b only before the window
    assert unused_entries(session=session, days=90, until=now) == []  # all too new to judge
    assert len(unused_entries(session=session, days=90, until=now, include_new=True)) == 4


def test_dashboard_search_figures_per_day_and_by_normalised_question(session):
    """Per bank-local day (a search at 23:30 Beijing time counts on that day, not the UTC one) and the
    questions asked most, found nothing, or answered below the hand-off line, grouped by script,
    width and case; only the window's logs count."""
    from datetime import date

    from retrieval.analytics.searches import frequent_queries, recent_searches, searches_per_day

    now = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
    log(session, "房贷利率", now - timedelta(minutes=5), confidence=0.9)
    log(session, "房貸利率", now - timedelta(hours=1), confidence=0.9)
    log(session, "ＬＰＲ是什么", now - timedelta(hours=2), confidence=0.3)
    log(session, "lpr是什么", datetime(2026, 11, 23, 15, 30, tzinfo=UTC), confidence=0.3)  # 23:30 on the 23rd, Beijing
    log(session, "外币现钞预约", now - timedelta(hours=3), results=[], confidence=0.0)
    log(session, "很久以前的问题", now - timedelta(days=30), results=[], confidence=0.0)
    session.commit()
    logs = recent_searches(session=session, days=3, now=now)
    assert len(logs) == 5
    assert searches_per_day(logs, days=3, now=now) == [(date(2026, 11, 23), 1), (date(2026, 11, 24), 0),
                                                       (date(2026, 11, 25), 4)]
    assert [(q.query, q.count) for q in frequent_queries(logs)] == [("房贷利率", 2), ("ＬＰＲ是什么", 2), ("外币现钞预约", 1)]
    assert [(q.query, q.count) for q in frequent_queries(logs, kind="zero")] == [("外币现钞预约", 1)]
    assert [(q.query, q.count) for q in frequent_queries(logs, kind="low")] == [("ＬＰＲ是什么", 2)]
