"""/api/v1 as its clients use it: success and error paths of every route, in Chinese."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from kb import service
from kb.db import session_scope
from tests.factories import create_item, entry_data, version_data

T0 = datetime(2026, 1, 1, tzinfo=UTC)
V1 = "/api/v1"


@pytest.fixture
def seeded(api, runtime):
    entries = [
        entry_data(id="MORT-RATE", title="房贷利率", product_type="mortgage", risk_level=None, facts={},
                   body="首套房贷款利率为LPR减30个基点，自2026年1月1日起执行。", related=["LPR"], valid_from=T0),
        entry_data(id="LPR", title="最新LPR报价", product_type="mortgage", risk_level=None, facts={},
                   body="5年期以上LPR为3.50%，自2025年5月20日起。", valid_from=T0),
        entry_data(id="WM-1", title="云岭稳享理财", valid_from=T0),
    ]
    with session_scope(runtime.engine) as session:
        for data in entries:
            service.create_entry(session=session, data=data, actor="expert", now=T0)
    runtime.drain_outbox()
    return entries


def error_of(response) -> str:
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    return body["error"]


# ---------------------------------------------------------------- auth


def test_token_login_and_logout(api, login):
    response = api.post(f"{V1}/auth/token", json={"username": "agent", "password": "zhiku-test-pass"})
    body = response.json()
    assert body["token_type"] == "bearer" and body["role"] == "agent" and body["expires_in"] == 8 * 3600
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert api.get(f"{V1}/entries", headers=headers).status_code == 200
    assert api.post(f"{V1}/auth/logout", headers=headers).status_code == 204
    assert error_of(api.get(f"{V1}/entries", headers=headers)) == "unauthenticated"


def test_wrong_password_and_lockout(api):
    for _ in range(5):
        response = api.post(f"{V1}/auth/token", json={"username": "agent", "password": "wrong-password"})
        assert response.status_code == 401 and error_of(response) == "unauthenticated"
    locked = api.post(f"{V1}/auth/token", json={"username": "agent", "password": "zhiku-test-pass"})
    assert locked.status_code == 401 and "锁定" in locked.json()["message"]


@pytest.mark.parametrize("header", ["Bearer forged-token", "Bearer ", "Basic YWdlbnQ6eA=="])
def test_forged_or_malformed_tokens_are_401(api, header):
    response = api.get(f"{V1}/entries", headers={"Authorization": header})
    assert response.status_code == 401 and error_of(response) == "unauthenticated"


def test_api_keys_scopes_and_rate_limit(api, login, seeded):
    created = api.post(f"{V1}/api-keys", json={"name": "客服机器人", "scopes": ["retrieve"], "rate_per_minute": 2},
                       headers=login("admin"))
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("zk_")
    assert "key" not in api.get(f"{V1}/api-keys", headers=login("admin")).json()[0] or \
        api.get(f"{V1}/api-keys", headers=login("admin")).json()[0]["key"] is None
    bot = {"X-API-Key": key}
    assert api.post(f"{V1}/retrieve", json={"query": "房贷利率"}, headers=bot).status_code == 200
    assert error_of(api.post(f"{V1}/search", json={"query": "房贷利率"}, headers=bot)) == "permission_denied"
    limited = api.post(f"{V1}/retrieve", json={"query": "房贷利率"}, headers=bot)
    assert limited.status_code == 429 and error_of(limited) == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    revoked = api.delete(f"{V1}/api-keys/{created.json()['id']}", headers=login("admin"))
    assert revoked.json()["revoked_at"]
    assert api.post(f"{V1}/retrieve", json={"query": "x"}, headers=bot).status_code == 401
    bad = api.post(f"{V1}/api-keys", json={"name": "x", "scopes": ["everything"]}, headers=login("admin"))
    assert bad.status_code == 422 and error_of(bad) == "validation_failed"


# ---------------------------------------------------------------- entries


def test_entries_list_detail_versions_diff_and_as_of(api, login, runtime, seeded):
    h = login("agent")
    listed = api.get(f"{V1}/entries", params={"q": "房贷", "page_size": 10}, headers=h).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == "MORT-RATE"
    assert api.get(f"{V1}/entries", params={"category": "产品体系"}, headers=h).json()["count"] == 3
    with session_scope(runtime.engine) as session:
        service.add_version(session=session, entry_id="WM-1", base_version=1, actor="expert", now=T0 + timedelta(days=5),
                            data=version_data(seeded[2], facts={"起购金额": {"value": "1", "unit": "元"}},
                                              valid_from=T0 + timedelta(days=5)))
    entry = api.get(f"{V1}/entries/WM-1", headers=h).json()
    assert entry["current"]["number"] == 2
    old = api.get(f"{V1}/entries/WM-1", params={"as_of": "2026-01-03T00:00:00+08:00"}, headers=h).json()
    assert old["current"]["number"] == 1
    assert [v["number"] for v in api.get(f"{V1}/entries/WM-1/versions", headers=h).json()] == [1, 2]
    assert api.get(f"{V1}/entries/WM-1/versions/2", headers=h).json()["facts"]["起购金额"]["unit"] == "元"
    diff = api.get(f"{V1}/entries/WM-1/diff", params={"from": 1, "to": 2}, headers=h).json()
    assert {"key": "起购金额", "change": "changed", "before": "1万元", "after": "1元"} in diff["facts"]
    assert error_of(api.get(f"{V1}/entries/NOPE", headers=h)) == "not_found"
    assert error_of(api.get(f"{V1}/entries/WM-1/versions/9", headers=h)) == "not_found"
    assert error_of(api.get(f"{V1}/entries", params={"page_size": 1000}, headers=h)) == "validation_failed"
    assert error_of(api.get(f"{V1}/entries/WM-1", params={"as_of": "昨天"}, headers=h)) == "validation_failed"
    assert error_of(api.get(f"{V1}/entries/WM-1", params={"as_of": "2020-01-01T00:00:00Z"}, headers=h)) == "not_found"


# ---------------------------------------------------------------- packs


def test_pack_lifecycle_over_http(api, login, runtime, seeded):
    item = {"op": "update", "entry_id": "WM-1", "base_version": 1,
            **version_data(seeded[2], summary="起购金额下调", valid_from=None), "category": "product"}
    created = api.post(f"{V1}/packs", json={"title": "理财起购金额调整", "items": [item]}, headers=login("expert"))
    assert created.status_code == 201, created.text
    pack = created.json()
    assert pack["state"] == "draft" and pack["items"][0]["op"] == "update"
    pid = pack["id"]
    assert api.post(f"{V1}/packs/{pid}/submit", headers=login("expert")).json()["state"] == "submitted"
    own = api.post(f"{V1}/packs/{pid}/approve", json={}, headers=login("expert"))
    assert own.status_code == 403
    queue = api.get(f"{V1}/packs", params={"state": "submitted"}, headers=login("reviewer")).json()
    assert [p["id"] for p in queue] == [pid]
    approved = api.post(f"{V1}/packs/{pid}/approve", json={"comment": "同意", "revision": 1}, headers=login("reviewer"))
    assert approved.json()["state"] == "published", approved.text
    again = api.post(f"{V1}/packs/{pid}/approve", json={}, headers=login("reviewer2"))
    assert again.status_code == 409 and error_of(again) == "invalid_transition"
    mine = api.get(f"{V1}/packs", params={"mine": True}, headers=login("expert")).json()
    assert [p["id"] for p in mine] == [pid]
    runtime.drain_outbox()
    results = api.post(f"{V1}/search", json={"query": "云岭稳享理财"}, headers=login("agent")).json()["results"]
    assert [(r["entry_id"], r["version"], r["changed_recently"]) for r in results if r["entry_id"] == "WM-1"] == [("WM-1", 2, True)]
    notices = api.get(f"{V1}/notices", params={"since": "2026-01-01T00:00:00Z"}, headers=login("agent")).json()
    assert notices[0]["entry_id"] == "WM-1" and "摘要" in notices[0]["summary"]


def test_reject_and_withdraw_over_http(api, login):
    pid = api.post(f"{V1}/packs", json={"title": "新增FAQ", "items": [{**create_item(), "category": "faq"}]},
                   headers=login("expert")).json()["id"]
    api.post(f"{V1}/packs/{pid}/submit", headers=login("expert"))
    empty = api.post(f"{V1}/packs/{pid}/reject", json={"comment": ""}, headers=login("reviewer"))
    assert empty.status_code == 422
    assert api.post(f"{V1}/packs/{pid}/reject", json={"comment": "请补充材料"}, headers=login("reviewer")).json()["state"] == "rejected"
    assert api.post(f"{V1}/packs/{pid}/revise", headers=login("expert")).json()["state"] == "draft"
    assert api.post(f"{V1}/packs/{pid}/withdraw", headers=login("expert2")).status_code == 403
    assert api.post(f"{V1}/packs/{pid}/withdraw", headers=login("expert")).json()["state"] == "withdrawn"


def test_bad_pack_bodies_are_4xx_and_write_nothing(api, login):
    h = {**login("expert"), "Content-Type": "application/json"}
    assert api.post(f"{V1}/packs", content=b"{not json", headers=h).status_code == 422
    assert api.post(f"{V1}/packs", json={"title": "x", "items": "not a list"}, headers=h).status_code == 422
    bad_item = api.post(f"{V1}/packs", json={"title": "x", "items": [{**create_item(), "risk_level": "R9"}]}, headers=h)
    assert bad_item.status_code == 422 and "risk_level" in bad_item.json()["message"]
    unknown = api.post(f"{V1}/packs", json={"title": "x", "items": [{"op": "retire", "entry_id": "NOPE", "base_version": 1}]}, headers=h)
    assert unknown.status_code == 404
    assert api.get(f"{V1}/packs", params={"mine": True}, headers=login("expert")).json() == []


def test_oversized_body_is_413(api, login):
    response = api.post(f"{V1}/lint", json={"text": "长" * 2_000_000}, headers=login("expert"))
    assert response.status_code == 413 and error_of(response) == "payload_too_large"


# ---------------------------------------------------------------- search, retrieve, lint


def test_search_and_retrieve_are_logged(api, login, seeded):
    found = api.post(f"{V1}/search", json={"query": "房贷利率", "top_k": 1}, headers=login("agent")).json()
    top = found["results"][0]
    assert top["entry_id"] == "MORT-RATE" and top["related"][0]["title"] == "最新LPR报价"
    assert found["took_ms"] > 0 and 0 <= found["confidence"] <= 1
    filtered = api.post(f"{V1}/search", json={"query": "利率", "filters": {"category": "常见问题"}}, headers=login("agent"))
    assert filtered.json()["results"] == []
    retrieved = api.post(f"{V1}/retrieve", json={"query": "最新LPR报价是多少", "conversation_id": "c-1"},
                         headers=login("agent")).json()
    assert retrieved["passages"][0]["citation"].startswith("LPR 第1版")
    assert isinstance(retrieved["handoff"], bool)
    logs = api.get(f"{V1}/search-logs", params={"actor": "agent"}, headers=login("admin")).json()
    assert [log["kind"] for log in logs] == ["retrieve", "search", "search"]
    assert logs[-1]["results"][0] == {"entry_id": "MORT-RATE", "version": 1, "score": pytest.approx(top["score"], abs=1e-5)}


@pytest.mark.parametrize("body", [{"query": ""}, {"query": "   "}, {"query": "房贷", "top_k": 0},
                                  {"query": "房贷", "unknown": 1}, {"query": "房贷", "as_of": "not-a-time"}])
def test_bad_search_requests_are_422(api, login, seeded, body):
    response = api.post(f"{V1}/search", json=body, headers=login("agent"))
    assert response.status_code == 422 and error_of(response) == "validation_failed"


def test_lint_route(api, login):
    response = api.post(f"{V1}/lint", json={"text": "本产品保本保收益，稳赚不赔。", "product_type": "wealth"},
                        headers=login("expert")).json()
    flags = {f["flag"] for f in response["findings"]}
    assert "guaranteed_return_promise" in flags and "missing_risk_disclosure" in flags
    promise = next(f for f in response["findings"] if f["flag"] == "guaranteed_return_promise")
    assert "本产品保本保收益，稳赚不赔。"[promise["start"]:promise["end"]] == promise["text"]


# ---------------------------------------------------------------- records


def test_feedback(api, login, seeded):
    ok = api.post(f"{V1}/feedback", json={"entry_id": "LPR", "version": 1, "useful": True, "query": "LPR"},
                  headers=login("agent"))
    assert ok.status_code == 201 and ok.json()["id"]
    assert api.post(f"{V1}/feedback", json={"entry_id": "LPR", "version": 7, "useful": False},
                    headers=login("agent")).status_code == 404


def test_audit_json_csv_and_verify(api, login, seeded):
    h = login("admin")
    events = api.get(f"{V1}/audit", params={"entry_id": "WM-1"}, headers=h).json()
    assert [e["action"] for e in events] == ["entry.create"]
    by_action = api.get(f"{V1}/audit", params={"action": "user."}, headers=h).json()
    assert len(by_action) == 6
    exported = api.get(f"{V1}/audit", params={"format": "csv", "actor": "expert"}, headers=h)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["id", "ts", "actor"] and len(rows) == 4
    assert api.get(f"{V1}/audit/verify", headers=h).json() == {"ok": True, "checked": 9}
    assert api.get(f"{V1}/audit", headers=login("agent")).status_code == 403


def test_offline_docs_and_openapi(api):
    docs = api.get("/docs")
    assert docs.status_code == 200 and "/static/swagger/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()
    assert api.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    spec = api.get("/openapi.json").json()
    assert "/api/v1/retrieve" in spec["paths"]
    assert spec["paths"]["/api/v1/search"]["post"]["summary"]


def test_expired_token_is_401(api, runtime):
    from datetime import timedelta as td

    from kb import auth
    from kb.db import session_scope as scope
    from kb.timeutil import utcnow

    with scope(runtime.engine) as session:
        token, _, _ = auth.login(session=session, username="agent", password="zhiku-test-pass",
                                 now=utcnow() - td(hours=9))
    response = api.get(f"{V1}/entries", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and error_of(response) == "unauthenticated"
