"""Knowledge gaps from generated logs: paraphrases land in one gap each (real model), counts, sources,
weekly trend, and a gap turned into a draft pack."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from kb.errors import Conflict, NotFound
from kb.models import Actor, Feedback
from kb.timeutil import utcnow
from retrieval.analytics import draft_from_gap, find_gaps
from retrieval.analytics.clustering import question_key
from retrieval.analytics.period import iso_week
from retrieval.embedding import HashingEmbedder
from review_workflow import service as workflow
from tests.retrieval.analytics_logs import NOISE, PARAPHRASES, generate, log

EXPERT = Actor("expert", "expert")


@pytest.mark.slow
def test_paraphrase_groups_become_three_gaps_with_the_real_model(session, model_path):
    from retrieval.embedding import SentenceTransformerEmbedder

    now = utcnow()
    expected = generate(session, now)
    gaps = find_gaps(session=session, embedder=SentenceTransformerEmbedder(model_path), days=28, until=now)
    assert gaps.count == 3, [(g.representative, g.count, g.examples) for g in gaps.data]
    found = {}
    for gap in gaps.data:
        groups = {group for group, qs in PARAPHRASES.items() for q, _ in qs for ex in gap.examples
                  if question_key(q) == question_key(ex)}
        assert len(groups) == 1, gap.examples
        found[groups.pop()] = gap.count
        assert not set(gap.examples) & set(NOISE)
    assert found == expected
    assert gaps.signals == sum(expected.values()) + len(NOISE)
    # 数字人民币钱包怎么开通 asked twice plus its traditional-script form: the representative
    ecny = next(g for g in gaps.data if g.count == expected["数字人民币"])
    assert ecny.representative == "数字人民币钱包怎么开通"
    assert ecny.distinct == 4


def test_gap_plumbing_counts_sources_and_weekly_trend(session):
    now = utcnow()
    week_ago = now - timedelta(days=7)
    for ts in (now - timedelta(hours=1), now - timedelta(hours=2), week_ago):
        log(session, "大额存单利率是多少？", ts)
    log(session, "大額存單利率是多少", now - timedelta(hours=3), results=[], confidence=0.0)
    log(session, "大额存单利率是多少", now - timedelta(hours=4), confidence=0.95)  # answered well: not a gap
    log(session, "大额存单利率是多少", now - timedelta(days=40))  # outside the window
    log(session, "只问过一次的问题", now - timedelta(hours=5))
    session.add(Feedback(ts=now, actor="agent", entry_id="KB-P009", version=1, useful=False, query="大额存单利率是多少"))
    session.commit()

    gaps = find_gaps(session=session, embedder=HashingEmbedder(), days=28, until=now, threshold=0.05)
    assert gaps.count == 1
    gap = gaps.data[0]
    assert gap.count == 5 and gap.distinct == 1
    assert gap.sources == {"low_confidence": 3, "zero_result": 1, "thumbs_down": 1}
    assert gap.representative == "大额存单利率是多少？"
    assert gap.nearest_entries == ["KB-P001", "KB-P009"]
    trend = {t.week: t.count for t in gap.trend}
    # Weeks are bank-local (Asia/Shanghai): "an hour ago" can be last week (e.g. Sunday 16:30 UTC).
    asked = [now - timedelta(hours=1), now - timedelta(hours=2), week_ago, now - timedelta(hours=3), now]
    assert {w: n for w, n in trend.items() if n} == dict(Counter(iso_week(t) for t in asked))
    assert len(gap.trend) in (5, 6)  # every week the 28-day window touches, zeros included
    assert find_gaps(session=session, embedder=None, days=28, until=now, min_count=1).count == 2


def test_gap_becomes_a_draft_pack_once(session):
    now = utcnow()
    for question in ("信用卡年费怎么收", "信用卡年费怎么收？", "信用卡年费怎么收"):
        log(session, question, now - timedelta(hours=2))
    session.commit()
    gap = find_gaps(session=session, embedder=HashingEmbedder(), until=now).data[0]

    pack = draft_from_gap(session=session, embedder=HashingEmbedder(), gap_id=gap.id, actor=EXPERT, until=now)
    session.commit()
    assert pack.state == "draft" and pack.submitter == "expert" and pack.source == f"gap:{gap.id}"
    [item] = workflow.pack_items(session=session, pack_id=pack.id)
    assert item.op == "create"
    assert item.data["title"] == "信用卡年费怎么收" and item.data["category"] == "faq"
    assert "信用卡年费怎么收" in item.data["body"] and "待专家补充" in item.data["body"]
    assert find_gaps(session=session, embedder=HashingEmbedder(), until=now).data[0].draft_pack_id == pack.id
    with pytest.raises(Conflict):
        draft_from_gap(session=session, embedder=HashingEmbedder(), gap_id=gap.id, actor=EXPERT, until=now)
    with pytest.raises(NotFound):
        draft_from_gap(session=session, embedder=HashingEmbedder(), gap_id="nope", actor=EXPERT, until=now)
