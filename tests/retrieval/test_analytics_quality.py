"""Evaluation runs kept over time, the golden question set (CRUD and a scored run), the weekly report."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from kb.errors import NotFound, PermissionDenied, ValidationFailed
from kb.models import Actor
from kb.timeutil import utcnow
from retrieval.analytics import (
    create_golden,
    delete_golden,
    list_eval_runs,
    list_golden,
    record_eval_run,
    run_golden,
    update_golden,
)
from retrieval.analytics.report import weekly_report
from retrieval.embedding import HashingEmbedder
from tests.retrieval.analytics_logs import generate

EXPERT = Actor("expert", "expert")


def test_eval_runs_are_kept_in_order(session):
    t0 = utcnow() - timedelta(days=2)
    record_eval_run(session=session, dataset="demo", report={"n": 3, "hit@1": 0.5, "results": [1]}, corpus="c", queries="q", ts=t0)
    record_eval_run(session=session, dataset="demo", report={"n": 3, "hit@1": 0.7}, ts=t0 + timedelta(days=1))
    record_eval_run(session=session, dataset="esun", report={"n": 9, "hit@1": 0.6})
    session.commit()
    runs = list_eval_runs(session=session, dataset="demo")
    assert [r.metrics["hit@1"] for r in runs] == [0.5, 0.7]
    assert "results" not in runs[0].metrics and runs[0].n == 3 and runs[0].app_version
    assert len(list_eval_runs(session=session)) == 3


def test_golden_questions_crud_and_run(runtime):
    from ingestion.demo import load_demo

    with Session(runtime.engine, expire_on_commit=False) as session:
        load_demo(session=session)
        session.commit()
    runtime.sync_index()
    searcher = runtime.searcher  # loads the vocabulary in its own transaction, before ours holds the write lock
    with Session(runtime.engine, expire_on_commit=False) as session:
        q1 = create_golden(session=session, data={"question": "數字人民幣錢包怎麼開通", "expected_ids": ["KB-P001"],
                                                  "category": "常见问题"}, actor=EXPERT)
        q2 = create_golden(session=session, data={"question": "房贷利率", "expected_ids": ["KB-P002"], "category": "product"},
                           actor=EXPERT)
        assert q1.category == "faq" and q1.author == "expert"
        with pytest.raises(ValidationFailed):
            create_golden(session=session, data={"question": "问", "expected_ids": ["NOPE"], "category": "faq"}, actor=EXPERT)
        with pytest.raises(PermissionDenied):
            create_golden(session=session, data={"question": "问", "expected_ids": ["KB-P001"], "category": "faq"},
                          actor=Actor("agent", "agent"))
        changed = update_golden(session=session, question_id=q2.id, actor=EXPERT,
                                data={"question": "房贷利率是多少", "expected_ids": ["KB-P002", "KB-P003"], "category": "产品体系"})
        assert changed.expected_ids == ["KB-P002", "KB-P003"]
        with pytest.raises(NotFound):
            delete_golden(session=session, question_id=999, actor=EXPERT)
        assert list_golden(session=session).count == 2
        run = run_golden(session=session, searcher=searcher, actor="expert", model="hashing")
        session.commit()
        assert run.dataset == "golden" and run.n == 2 and run.id
        assert set(run.metrics["categories"]) == {"faq", "product"}
        assert 0 <= run.metrics["hit@5"] <= 1
        delete_golden(session=session, question_id=q1.id, actor=EXPERT)
        assert list_golden(session=session).count == 1 and list_golden(session=session, active=None).count == 2
        assert run_golden(session=session, searcher=searcher, category="faq").n == 0
        assert [r.dataset for r in list_eval_runs(session=session)] == ["golden", "golden:faq"]


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_weekly_report_is_written_with_its_charts(session, tmp_path, fmt):
    now = utcnow()
    generate(session, now)
    record_eval_run(session=session, dataset="demo", report={"n": 3, "hit@1": 0.5, "mrr@10": 0.6}, ts=now - timedelta(days=8))
    record_eval_run(session=session, dataset="demo", report={"n": 3, "hit@1": 0.7, "mrr@10": 0.8}, ts=now)
    session.commit()
    files = weekly_report(session=session, embedder=HashingEmbedder(), out_dir=tmp_path / "out", fmt=fmt, now=now)
    assert files.report.exists() and files.report.suffix == f".{fmt}"
    assert len(files.images) == 4
    for image in files.images:
        assert image.parent == files.report.parent and image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert image.stat().st_size > 5000
    text = files.report.read_text(encoding="utf-8")
    assert "知库周报" in text and "知识缺口" in text and files.images[0].name in text
    if fmt == "html":
        assert text.startswith("<!doctype html>") and "<table>" in text and f'src="{files.images[0].name}"' in text
