"""Analytics over HTTP: a gap turned into a draft pack, golden questions, freshness; /metrics and
request ids; the weekly report and eval recording from the command line."""
from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import Session
from typer.testing import CliRunner

from kb.timeutil import utcnow
from tests.retrieval.analytics_logs import log


def test_gap_to_draft_through_the_api(api, login, runtime):
    now = utcnow()
    with Session(runtime.engine) as session:
        for q in ("信用卡年费怎么免", "信用卡年费怎么免？", "信用卡年費怎麼免"):
            log(session, q, now - timedelta(hours=1), confidence=0.1)
        session.commit()
    listed = api.get("/api/v1/analytics/gaps", headers=login("expert"))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["count"] == 1 and body["data"][0]["count"] == 3 and body["data"][0]["sources"] == {"low_confidence": 3}
    gap_id = body["data"][0]["id"]

    drafted = api.post(f"/api/v1/analytics/gaps/{gap_id}/draft", json={}, headers=login("expert"))
    assert drafted.status_code == 201, drafted.text
    pack = drafted.json()
    assert pack["state"] == "draft" and pack["submitter"] == "expert"
    assert pack["items"][0]["op"] == "create" and pack["items"][0]["data"]["category"] == "faq"
    assert "信用卡年费怎么免" in pack["items"][0]["data"]["body"]
    assert api.get("/api/v1/analytics/gaps", headers=login("expert")).json()["data"][0]["draft_pack_id"] == pack["id"]
    assert api.post(f"/api/v1/analytics/gaps/{gap_id}/draft", headers=login("expert")).status_code == 409
    assert api.post("/api/v1/analytics/gaps/nope/draft", headers=login("expert")).status_code == 404
    # the expert edits it like any pack of theirs
    assert api.get(f"/api/v1/packs/{pack['id']}", headers=login("expert")).json()["title"].startswith("知识缺口")


def test_golden_crud_run_and_eval_runs(api, login, runtime):
    from ingestion.demo import load_demo

    with Session(runtime.engine) as session:
        load_demo(session=session)
        session.commit()
    runtime.sync_index()
    expert = login("expert")
    created = api.post("/api/v1/analytics/golden", json={"question": "房贷利率", "expected_ids": ["KB-P002"],
                                                         "category": "产品体系"}, headers=expert)
    assert created.status_code == 201, created.text
    qid = created.json()["id"]
    bad = api.post("/api/v1/analytics/golden", json={"question": "x", "expected_ids": ["NOPE"], "category": "faq"}, headers=expert)
    assert bad.status_code == 422
    assert api.put(f"/api/v1/analytics/golden/{qid}", json={"question": "房贷利率多少", "expected_ids": ["KB-P002"],
                                                            "category": "product"}, headers=expert).json()["question"] == "房贷利率多少"
    assert api.get("/api/v1/analytics/golden", headers=expert).json()["count"] == 1
    run = api.post("/api/v1/analytics/golden/run", headers=expert)
    assert run.status_code == 201, run.text
    assert run.json()["dataset"] == "golden" and run.json()["n"] == 1
    runs = api.get("/api/v1/analytics/eval-runs", headers=login("reviewer")).json()
    assert [r["dataset"] for r in runs] == ["golden"]
    assert api.delete(f"/api/v1/analytics/golden/{qid}", headers=expert).json()["active"] is False
    fresh = api.get("/api/v1/analytics/freshness", headers=login("reviewer"))
    assert fresh.status_code == 200 and fresh.json()["target_hours"] == 24
    for path in ("top-questions", "usage", "feedback", "unused-entries"):
        assert api.get(f"/api/v1/analytics/{path}", headers=login("admin")).status_code == 200, path


def test_metrics_and_request_ids(api, login):
    headers = login("agent")
    searched = api.post("/api/v1/search", json={"query": "房贷利率"}, headers={**headers, "X-Request-ID": "req-123"})
    assert searched.headers["X-Request-ID"] == "req-123"
    generated = api.get("/healthz")
    assert len(generated.headers["X-Request-ID"]) == 32
    assert api.get("/healthz", headers={"X-Request-ID": "bad id\n"}).headers["X-Request-ID"] != "bad id\n"
    api.get("/api/v1/entries/KB-NOPE", headers=headers)
    scraped = api.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert 'zhiku_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/api/v1/search",status="200"}' in text
    assert 'route="/api/v1/entries/{entry_id}"' in text and "KB-NOPE" not in text
    assert 'zhiku_searches_total{kind="search"}' in text
    for series in ("zhiku_outbox_pending", "zhiku_outbox_lag_seconds", "zhiku_card_pushes", "zhiku_publishes", "zhiku_lint_findings"):
        assert series in text


def test_metrics_take_the_scrape_token_when_one_is_set(api, runtime):
    """ZHIKU_METRICS_TOKEN: a scrape without it, with another one or a user's login is 401; with it, 200."""
    runtime.settings.metrics_token = "scrape-Zk42-token"
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic scrape-Zk42-token"},
                        {"Authorization": "Bearer scrape-Zk42-token-longer"}):
            refused = api.get("/metrics", headers=headers)
            assert refused.status_code == 401 and refused.json()["error"] == "unauthenticated", headers
            assert refused.headers["WWW-Authenticate"] == "Bearer"
        scraped = api.get("/metrics", headers={"Authorization": "Bearer scrape-Zk42-token"})
        assert scraped.status_code == 200 and "zhiku_outbox_pending" in scraped.text
        assert api.get("/healthz").status_code == 200  # health stays open
    finally:
        runtime.settings.metrics_token = None
    assert api.get("/metrics").status_code == 200


def test_json_log_lines_carry_the_request_id(api, login, caplog):
    import logging

    from api.logging import JsonFormatter, RequestIdFilter

    with caplog.at_level(logging.INFO, logger="zhiku.request"):
        api.get("/healthz", headers={"X-Request-ID": "trace-42"})
    record = next(r for r in caplog.records if r.name == "zhiku.request")
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "trace-42" and line["route"] == "/healthz" and line["status"] == 200


def test_cli_report_weekly_and_eval_recording(data_dir_with_db, tmp_path):
    from api.cli import _record_eval, app
    from kb.db import make_engine
    from retrieval.analytics.quality import list_eval_runs

    result = CliRunner().invoke(app, ["report", "weekly", "--out", str(tmp_path / "r"), "--format", "html"])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert len(written) == 5 and any(n.endswith(".html") for n in written) and sum(n.endswith(".png") for n in written) == 4

    _record_eval({"n": 2, "hit@1": 0.5, "results": []}, record=None, dataset="demo", corpus="c.jsonl", queries="q.jsonl")
    engine = make_engine(f"sqlite:///{data_dir_with_db / 'zhiku.db'}")
    with Session(engine) as session:
        runs = list_eval_runs(session=session)
    engine.dispose()
    assert [(r.dataset, r.metrics) for r in runs] == [("demo", {"n": 2, "hit@1": 0.5})]
