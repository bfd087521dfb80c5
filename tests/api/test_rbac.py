"""Every route with every role: 401 without credentials, 403 for a role the matrix does not allow,
and through the gate for the roles it does. The same matrix is written in docs/rbac.md."""
from __future__ import annotations

import pytest

STAFF = {"agent", "expert", "reviewer", "admin"}
AUTHORS = {"expert", "admin"}
REVIEWERS = {"reviewer", "admin"}
EDITORS = {"expert", "reviewer", "admin"}
ADMINS = {"admin"}

PACK = {"title": "权限测试", "items": []}
# (method, path, body, roles allowed, bot scope allowed)
MATRIX = [
    ("POST", "/api/v1/auth/logout", None, STAFF, "*"),
    ("POST", "/api/v1/api-keys", {"name": "bot", "scopes": ["search"]}, ADMINS, None),
    ("GET", "/api/v1/api-keys", None, ADMINS, None),
    ("DELETE", "/api/v1/api-keys/999", None, ADMINS, None),
    ("GET", "/api/v1/entries", None, STAFF, None),
    ("GET", "/api/v1/entries/NOPE", None, STAFF, None),
    ("GET", "/api/v1/entries/NOPE/versions", None, STAFF, None),
    ("GET", "/api/v1/entries/NOPE/versions/1", None, STAFF, None),
    ("GET", "/api/v1/entries/NOPE/diff?from=1&to=2", None, STAFF, None),
    ("GET", "/api/v1/entries/NOPE/attachments", None, STAFF, None),
    ("GET", "/api/v1/attachments/ATT", None, STAFF, None),
    ("POST", "/api/v1/entries/NOPE/rollback", {"to_version": 1, "reason": "测试"}, ADMINS, None),
    ("POST", "/api/v1/packs", PACK, AUTHORS, None),
    ("POST", "/api/v1/packs/upload", None, AUTHORS, None),
    ("PUT", "/api/v1/packs/nope", PACK, AUTHORS, None),
    ("POST", "/api/v1/packs/nope/submit", None, AUTHORS, None),
    ("POST", "/api/v1/packs/nope/withdraw", None, AUTHORS, None),
    ("POST", "/api/v1/packs/nope/revise", None, AUTHORS, None),
    ("POST", "/api/v1/packs/nope/approve", {}, REVIEWERS, None),
    ("POST", "/api/v1/packs/nope/reject", {"comment": "不通过"}, REVIEWERS, None),
    ("POST", "/api/v1/packs/nope/publish", None, ADMINS, None),
    ("GET", "/api/v1/packs", None, EDITORS, None),
    ("GET", "/api/v1/packs/nope", None, EDITORS, None),
    ("PUT", "/api/v1/packs/nope/file", None, AUTHORS, None),
    ("GET", "/api/v1/packs/nope/attachments", None, EDITORS, None),
    ("POST", "/api/v1/packs/nope/attachments", None, AUTHORS, None),
    ("DELETE", "/api/v1/packs/nope/attachments/ATT", None, AUTHORS, None),
    ("POST", "/api/v1/search", {"query": "房贷利率"}, STAFF, "search"),
    ("POST", "/api/v1/retrieve", {"query": "房贷利率"}, STAFF, "retrieve"),
    ("POST", "/api/v1/lint", {"text": "保本"}, EDITORS, None),
    ("GET", "/api/v1/notices", None, STAFF, "notices"),
    ("POST", "/api/v1/feedback", {"entry_id": "NOPE", "version": 1, "useful": True}, STAFF, "feedback"),
    ("GET", "/api/v1/audit", None, REVIEWERS, None),
    ("GET", "/api/v1/audit/verify", None, REVIEWERS, None),
    ("GET", "/api/v1/search-logs", None, REVIEWERS, None),
    ("GET", "/api/v1/analytics/gaps", None, AUTHORS, None),
    ("POST", "/api/v1/analytics/gaps/GAP/draft", {}, AUTHORS, None),
    ("GET", "/api/v1/analytics/top-questions", None, AUTHORS, None),
    ("GET", "/api/v1/analytics/usage", None, AUTHORS, None),
    ("GET", "/api/v1/analytics/feedback", None, AUTHORS, None),
    ("GET", "/api/v1/analytics/unused-entries", None, AUTHORS, None),
    ("GET", "/api/v1/analytics/freshness", None, EDITORS, None),
    ("GET", "/api/v1/analytics/eval-runs", None, EDITORS, None),
    ("GET", "/api/v1/analytics/golden", None, AUTHORS, None),
    ("POST", "/api/v1/analytics/golden", {"question": "问", "expected_ids": ["NOPE"], "category": "faq"}, AUTHORS, None),
    ("PUT", "/api/v1/analytics/golden/777", {"question": "问", "expected_ids": ["NOPE"], "category": "faq"}, AUTHORS, None),
    ("DELETE", "/api/v1/analytics/golden/777", None, AUTHORS, None),
    ("POST", "/api/v1/analytics/golden/run", None, AUTHORS, None),
    ("POST", "/api/v1/conversations", {"channel": "phone"}, STAFF, "conversations"),
    ("GET", "/api/v1/conversations/CONV", None, STAFF, "conversations"),
    ("GET", "/api/v1/conversations/CONV/utterances", None, STAFF, "conversations"),
    ("POST", "/api/v1/conversations/CONV/utterances", {"speaker": "customer", "text": "房贷"}, STAFF, "conversations"),
    ("GET", "/api/v1/conversations/CONV/cards", None, STAFF, "conversations"),
    ("POST", "/api/v1/conversations/CONV/cards/NOPE/pin", None, STAFF, "conversations"),
    ("POST", "/api/v1/conversations/CONV/cards/NOPE/dismiss", None, STAFF, "conversations"),
    ("POST", "/api/v1/conversations/CONV/close", None, STAFF, "conversations"),
    ("GET", "/api/v1/conversations/CONV/events", None, STAFF, "conversations"),
    ("GET", "/api/v1/card-impressions", None, REVIEWERS, None),
]
CALLERS = ("none", "agent", "expert", "reviewer", "admin", "bot")


def test_the_matrix_covers_every_route(api):
    spec = api.get("/openapi.json").json()["paths"]
    routes = {(m.upper(), path) for path, ops in spec.items() if path.startswith("/api/v1") for m in ops}
    listed = {(m, p.split("?")[0].replace("999", "{key_id}").replace("NOPE", "{entry_id}").replace("nope", "{pack_id}").replace("ATT", "{attachment_id}")
               .replace("GAP", "{gap_id}").replace("777", "{question_id}").replace("CONV", "{conversation_id}")
               .replace("versions/1", "versions/{number}")) for m, p, *_ in MATRIX}
    assert routes - {("POST", "/api/v1/auth/token")} == listed


@pytest.fixture
def credentials(api, login):
    key = api.post("/api/v1/api-keys", json={"name": "全权限机器人", "scopes": ["search", "retrieve", "feedback", "notices",
                                                                                    "conversations"],
                                             "rate_per_minute": 100_000}, headers=login("admin")).json()["key"]
    headers = {role: login(role) for role in ("agent", "expert", "reviewer", "admin")}
    return headers | {"none": {}, "bot": {"X-API-Key": key}}


@pytest.mark.parametrize(("method", "path", "body", "roles", "scope"), MATRIX, ids=[f"{m} {p}" for m, p, *_ in MATRIX])
def test_route_against_every_caller(api, credentials, method, path, body, roles, scope):
    for caller in CALLERS:
        response = api.request(method, path, json=body, headers=credentials[caller])
        allowed = caller in roles or (caller == "bot" and scope is not None)
        if caller == "none":
            assert response.status_code == 401, (caller, response.text)
            assert response.json()["error"] == "unauthenticated"
        elif allowed:
            assert response.status_code not in (401, 403), (caller, response.status_code, response.text)
        else:
            assert response.status_code == 403, (caller, response.status_code, response.text)
            assert response.json()["error"] == "permission_denied"
