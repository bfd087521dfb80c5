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
    ("POST", "/api/v1/search", {"query": "房贷利率"}, STAFF, "search"),
    ("POST", "/api/v1/retrieve", {"query": "房贷利率"}, STAFF, "retrieve"),
    ("POST", "/api/v1/lint", {"text": "保本"}, EDITORS, None),
    ("GET", "/api/v1/notices", None, STAFF, "notices"),
    ("POST", "/api/v1/feedback", {"entry_id": "NOPE", "version": 1, "useful": True}, STAFF, "feedback"),
    ("GET", "/api/v1/audit", None, REVIEWERS, None),
    ("GET", "/api/v1/audit/verify", None, REVIEWERS, None),
    ("GET", "/api/v1/search-logs", None, REVIEWERS, None),
]
CALLERS = ("none", "agent", "expert", "reviewer", "admin", "bot")


def test_the_matrix_covers_every_route(api):
    spec = api.get("/openapi.json").json()["paths"]
    routes = {(m.upper(), path) for path, ops in spec.items() if path.startswith("/api/v1") for m in ops}
    listed = {(m, p.split("?")[0].replace("999", "{key_id}").replace("NOPE", "{entry_id}").replace("nope", "{pack_id}")
               .replace("versions/1", "versions/{number}")) for m, p, *_ in MATRIX}
    assert routes - {("POST", "/api/v1/auth/token")} == listed


@pytest.fixture
def credentials(api, login):
    key = api.post("/api/v1/api-keys", json={"name": "全权限机器人", "scopes": ["search", "retrieve", "feedback", "notices"],
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
