"""The web pages through TestClient: sessions and CSRF, pages per role, role guards, the expert →
reviewer → agent flow, escaping of stored XSS, security headers, error pages."""
from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from datetime import timedelta

import pytest
from sqlmodel import select

from kb.db import session_scope
from kb.models import Actor, Feedback
from kb.timeutil import utcnow
from review_workflow import service as workflow
from tests.conftest import PASSWORD
from tests.factories import create_item
from tests.web.conftest import csrf_of

HTMX = {"HX-Request": "true"}
PAGES = {
    "agent": ["/agent", "/agent?q=房贷利率", "/entries/MORT-RATE"],
    "expert": ["/expert/packs", "/expert/packs/new", "/expert/packs/new?op=update&entry_id=WM-030",
               "/expert/packs/new?op=retire&entry_id=LPR", "/expert/upload", "/agent", "/entries/WM-030"],
    "reviewer": ["/review", "/admin/audit", "/agent"],
    "admin": ["/admin", "/admin/users", "/admin/keys", "/admin/audit", "/review", "/expert/packs"],
}
FORBIDDEN = {
    "agent": ["/admin", "/review", "/expert/packs", "/expert/upload", "/admin/audit"],
    "expert": ["/admin", "/review", "/admin/users", "/admin/audit"],
    "reviewer": ["/admin", "/admin/keys", "/expert/packs/new"],
}
HOMES = {"agent": "/agent", "expert": "/expert/packs", "reviewer": "/review", "admin": "/admin"}


def post(client, url, data=None, *, page="/agent"):  # type: ignore[no-untyped-def]
    """POST a form with the session's CSRF token (read from any page of the session)."""
    return client.post(url, data={**(data or {}), "csrf_token": csrf_of(client.get(page).text)})


# ---------------------------------------------------------------- sessions, CSRF, headers


def test_login_sets_a_strict_httponly_cookie_and_lands_on_the_role_home(page_client):
    for role, home in HOMES.items():
        client = page_client(None)
        form = client.get("/login")
        assert form.status_code == 200 and "登录知库" in form.text
        response = client.post("/login", data={"username": role, "password": PASSWORD, "csrf_token": csrf_of(form.text)})
        assert response.status_code == 303 and response.headers["location"] == home
        cookie = response.headers["set-cookie"].lower()
        assert "zhiku_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie


def test_login_without_csrf_token_is_refused(page_client):
    client = page_client(None)
    client.get("/login")
    response = client.post("/login", data={"username": "agent", "password": PASSWORD})
    assert response.status_code == 403 and "CSRF" in response.text
    assert "zhiku_session" not in response.headers.get("set-cookie", "")


def test_wrong_password_then_lockout_messages_are_chinese(page_client):
    client = page_client(None)
    for attempt in range(5):
        form = client.get("/login")
        response = client.post("/login", data={"username": "expert2", "password": "wrong-password",
                                               "csrf_token": csrf_of(form.text)})
        assert response.status_code == 401
        assert "用户名或密码错误" in response.text
    form = client.get("/login")
    response = client.post("/login", data={"username": "expert2", "password": PASSWORD, "csrf_token": csrf_of(form.text)})
    assert response.status_code == 401
    assert "已被锁定" in response.text and "account locked" not in response.text


def test_security_headers_and_csp_on_pages_and_api(page_client):
    client = page_client("agent")
    for url in ("/agent", "/login", "/api/v1/entries", "/static/app.css"):
        response = client.get(url)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
    docs = client.get("/docs")
    assert docs.status_code == 200 and "script-src 'self' 'unsafe-inline'" in docs.headers["content-security-policy"]


def test_pages_have_no_inline_scripts_or_handlers(page_client):
    client = page_client("admin")
    for url in ("/admin", "/admin/users", "/admin/keys", "/admin/audit", "/review", "/expert/packs", "/agent?q=理财",
                "/entries/WM-030", "/expert/packs/new?op=update&entry_id=WM-030"):
        html = client.get(url).text
        for script in html.split("<script")[1:]:
            assert ' src="/static/' in script.split(">")[0], f"inline script on {url}"
        assert " onclick=" not in html and " onload=" not in html and "javascript:" not in html
        assert 'style="' not in html, f"inline style on {url}"


def test_signed_out_pages_redirect_to_login_and_htmx_gets_hx_redirect(page_client):
    client = page_client(None)
    response = client.get("/agent")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/agent"
    response = client.get("/agent/search?q=x", headers=HTMX)
    assert response.status_code == 204 and response.headers["hx-redirect"].startswith("/login")
    assert client.get("/").headers["location"] == "/login"


def test_logout_revokes_the_session(page_client):
    client = page_client("agent")
    response = post(client, "/logout")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    client.cookies.clear()
    # The old token is revoked server-side too: replaying it is a sign-in page, not the workspace.
    assert client.get("/agent").status_code == 303


def test_post_without_csrf_is_refused_and_the_header_form_is_accepted(page_client):
    client = page_client("agent")
    data = {"entry_id": "WM-030", "version": "1", "useful": "1"}
    assert client.post("/agent/feedback", data=data).status_code == 403
    assert client.post("/agent/feedback", data={**data, "csrf_token": "forged"}).status_code == 403
    other = page_client("expert")
    assert client.post("/agent/feedback", data={**data, "csrf_token": csrf_of(other.get("/agent").text)}).status_code == 403
    token = csrf_of(client.get("/agent").text)
    response = client.post("/agent/feedback", data=data, headers={**HTMX, "X-CSRF-Token": token})
    assert response.status_code == 200 and "已记录您的反馈" in response.text


# ---------------------------------------------------------------- pages and roles


@pytest.mark.parametrize("role", sorted(PAGES))
def test_every_page_of_a_role_renders(page_client, role):
    client = page_client(role)
    assert client.get("/").headers["location"] == HOMES[role]
    for url in PAGES[role]:
        response = client.get(url)
        assert response.status_code == 200, (url, response.text[:500])
        assert '<html lang="zh-CN">' in response.text and "退出登录" in response.text


@pytest.mark.parametrize("role", sorted(FORBIDDEN))
def test_pages_of_other_roles_are_forbidden_in_chinese(page_client, role):
    client = page_client(role)
    for url in FORBIDDEN[role]:
        response = client.get(url)
        assert response.status_code == 403, url
        assert "无权限" in response.text


def test_navigation_is_role_aware(page_client):
    agent = page_client("agent").get("/agent").text
    assert "坐席工作台" in agent and 'href="/agent#conversation-panel"' in agent and "/admin/users" not in agent
    assert 'id="conversation-panel"' in agent
    admin = page_client("admin").get("/admin").text
    assert all(link in admin for link in ("/admin/users", "/admin/keys", "/admin/audit", "/review"))


def test_errors_are_chinese_pages_for_browsers_and_json_for_the_api(page_client, login, api):
    client = page_client("agent")
    page = client.get("/entries/NOPE")
    assert page.status_code == 404 and "未找到" in page.text and page.headers["content-type"].startswith("text/html")
    unknown = client.get("/no-such-page", headers={"accept": "text/html"})
    assert unknown.status_code == 404 and "页面不存在" in unknown.text
    api_error = api.get("/api/v1/entries/NOPE", headers=login("agent"))
    assert api_error.status_code == 404 and api_error.json()["error"] == "not_found"


# ---------------------------------------------------------------- agent


def test_instant_search_highlights_terms_and_swaps_the_top_card(page_client):
    client = page_client("agent")
    response = client.get("/agent/search", params={"q": "房贷利率"}, headers=HTMX)
    assert response.status_code == 200
    assert "<mark>房贷</mark>" in response.text or "<mark>房贷利率</mark>" in response.text
    assert 'id="card-pane" class="card-pane" hx-swap-oob="true"' in response.text
    filtered = client.get("/agent/search", params={"q": "房贷利率", "category": "compliance"}, headers=HTMX)
    assert "房贷利率</a>" not in filtered.text.replace("<mark>", "").replace("</mark>", "")
    # A plain request (no htmx) gets the full workspace with the results.
    assert client.get("/agent/search", params={"q": "房贷"}).headers["location"].startswith("/agent?q=")


def test_card_shows_facts_script_disclosure_citation_and_related(page_client):
    client = page_client("agent")
    html = client.get("/agent/cards/WM-030", headers=HTMX).text
    assert "起购金额" in html and "1万元" in html
    assert 'data-copy-target="script-WM-030-1"' in html and 'id="script-WM-030-1"' in html
    assert "理财非存款、产品有风险、投资须谨慎。" in html
    assert "WM-030 第1版" in html and "起生效" in html
    assert "最新LPR报价" in html  # related entry
    assert 'hx-post="/agent/feedback"' in html


def test_feedback_is_recorded(page_client, seeded):
    client = page_client("agent")
    token = csrf_of(client.get("/agent").text)
    response = client.post("/agent/feedback", data={"entry_id": "MORT-RATE", "version": "1", "useful": "0",
                                                    "query": "房贷利率", "csrf_token": token}, headers=HTMX)
    assert response.status_code == 200
    with session_scope(seeded.engine) as session:
        row = session.exec(select(Feedback)).one()
        assert (row.actor, row.entry_id, row.useful, row.query) == ("agent", "MORT-RATE", False, "房贷利率")


# ---------------------------------------------------------------- expert → reviewer → agent


def _new_pack(client, **fields):  # type: ignore[no-untyped-def]
    form = client.get("/expert/packs/new?op=update&entry_id=WM-030")
    assert 'value="云岭稳享30天持有期理财"' in form.text  # the current version is prefilled
    assert 'name="base_version" value="1"' in form.text
    data = {"op": "update", "entry_id": "WM-030", "base_version": "1", "title": "云岭稳享30天持有期理财",
            "category": "product", "product_type": "wealth", "risk_level": "R2",
            "summary": "R2 级净值型理财，1元起购。", "body": "本产品为净值型理财产品。\n起购金额1元。\n理财非存款、产品有风险、投资须谨慎。",
            "facts": "起购金额=1 元\n期限=30 天", "script_template": "您好，该产品1元起购。理财非存款、产品有风险、投资须谨慎。",
            "tags": "理财、净值型", "csrf_token": csrf_of(form.text), **fields}
    response = client.post("/expert/packs", data=data)
    assert response.status_code == 303, response.text
    return response.headers["location"].split("?")[0]


def test_expert_form_pack_reviewed_and_the_agent_sees_the_change(page_client, seeded):
    expert = page_client("expert")
    pack_url = _new_pack(expert)
    page = expert.get(pack_url)
    assert "草稿" in page.text and "起购金额" in page.text and "1万元" in page.text and "1元" in page.text
    assert post(expert, pack_url + "/submit").status_code == 303
    assert "待审核" in expert.get(pack_url).text

    queue = page_client("reviewer").get("/review").text
    assert pack_url in queue
    reviewer = page_client("reviewer")
    review_page = reviewer.get(pack_url).text
    assert 'action="' + pack_url + '/approve"' in review_page
    approved = reviewer.post(pack_url + "/approve", data={"csrf_token": csrf_of(review_page), "revision": "1"})
    assert approved.status_code == 303 and "msg=approved" in approved.headers["location"]
    seeded.drain_outbox()

    agent = page_client("agent")
    results = agent.get("/agent/search", params={"q": "稳享30天理财"}, headers=HTMX).text
    assert "已变更" in results
    card = agent.get("/agent/cards/WM-030", headers=HTMX).text
    assert "该产品信息已变更，请注意话术更新" in card and "起购金额：1万元 → 1元" in card
    entry = agent.get("/entries/WM-030").text
    assert "第 2 版" in entry and "版本对比" in entry and 'class="del">1万元' in entry and 'class="ins">1元' in entry


def test_an_expert_attaches_a_screenshot_and_the_agent_downloads_it_from_the_card(page_client, seeded):
    """The pack page lists attachments; its owner adds a file to an item and a link, removes the link;
    a reviewer sees them and has no form; after approval the card (and the entry page) links the file,
    which a signed-in agent downloads under its Chinese name — signed out, the login page."""
    from tests.ingestion.test_attachments import PNG

    expert = page_client("expert")
    pack_url = _new_pack(expert)
    page = expert.get(pack_url).text
    assert "没有附件" in page and 'action="' + pack_url + '/attachments"' in page and "第 1 项：云岭稳享30天持有期理财" in page
    token = csrf_of(page)
    added = expert.post(pack_url + "/attachments", data={"csrf_token": token, "position": "0"},
                        files={"file": ("产品说明书截图.png", PNG, "image/png")})
    assert added.status_code == 303 and "msg=attachment_added" in added.headers["location"]
    linked = expert.post(pack_url + "/attachments", data={"csrf_token": token, "url": "https://video.example-bank.cn/稳享.mp4",
                                                           "title": "产品培训视频"}, files={"file": ("", b"")})
    assert linked.status_code == 303
    refused = expert.post(pack_url + "/attachments", data={"csrf_token": token},
                          files={"file": ("脚本.svg", b"<svg onload=alert(1)>", "image/svg+xml")})
    assert refused.status_code == 422 and "不支持的附件类型" in refused.text
    page = expert.get(pack_url).text
    assert "产品说明书截图.png" in page and "产品培训视频" in page and "（链接）" in page
    assert expert.post(pack_url + f"/attachments/{_attachment_id(page, '产品培训视频')}/delete",
                       data={"csrf_token": token}).status_code == 303
    page = expert.get(pack_url).text
    assert "产品培训视频" not in page and "产品说明书截图.png" in page

    assert post(expert, pack_url + "/submit").status_code == 303
    reviewer = page_client("reviewer")
    review_page = reviewer.get(pack_url).text
    assert "产品说明书截图.png" in review_page and 'action="' + pack_url + '/attachments"' not in review_page
    assert reviewer.post(pack_url + "/approve", data={"csrf_token": csrf_of(review_page), "revision": "1"}).status_code == 303
    seeded.drain_outbox()

    agent = page_client("agent")
    card = agent.get("/agent/cards/WM-030", headers=HTMX).text
    assert "附件：" in card and "产品说明书截图.png" in card
    download = _attachment_href(card, "产品说明书截图.png")
    assert download in agent.get("/entries/WM-030").text
    got = agent.get(download)
    assert got.status_code == 200 and got.content == PNG and "filename*=UTF-8''" in got.headers["content-disposition"]
    assert page_client(None).get(download).status_code == 303  # signed out: to the login page


def _attachment_href(html: str, filename: str) -> str:
    before = html[: html.index(f">{filename}</a>")]
    return before[before.rindex('href="') + 6: before.rindex('"')]


def _attachment_id(html: str, filename: str) -> str:
    at = html.index(f"移除附件 {filename}")
    action = html[html.rindex('action="', 0, at) + 8: at]
    return action.split("/attachments/")[1].split("/")[0]


def test_a_web_upload_keeps_the_files_that_came_with_it(page_client, seeded):
    """Saving a ZIP from the upload page stores its media as the pack's attachments (as the API does)."""
    from tests.ingestion.test_attachments import PNG, md
    from tests.ingestion.test_parsers import zip_bytes

    expert = page_client("expert")
    token = csrf_of(expert.get("/expert/upload").text)
    data = zip_bytes([("条目/开户.md", md("借记卡开户流程", entry_id="WEB-ATT", refs=["../图片/开户截图.png"])),
                      ("图片/开户截图.png", PNG)])
    saved = expert.post("/expert/upload", data={"csrf_token": token, "action": "save", "title": "开户资料"},
                        files={"file": ("开户资料.zip", data, "application/zip")})
    assert saved.status_code == 303
    page = expert.get(saved.headers["location"].split("?")[0]).text
    assert "开户截图.png" in page and "没有附件" not in page


def test_four_eyes_is_a_clear_message(page_client, seeded):
    admin = page_client("admin")
    pack_url = _new_pack(admin)
    post(admin, pack_url + "/submit")
    page = admin.get(pack_url).text
    assert "四眼原则" in page and "/approve" not in page
    response = admin.post(pack_url + "/approve", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 403 and "四眼原则" in response.text and "无权限" in response.text


def test_blocking_findings_are_marked_inline_and_need_an_override(page_client):
    expert = page_client("expert")
    pack_url = _new_pack(expert, body="本产品保本保收益。\n理财非存款、产品有风险、投资须谨慎。")
    post(expert, pack_url + "/submit")
    reviewer = page_client("reviewer")
    page = reviewer.get(pack_url).text
    assert 'class="lint lint-block"' in page and ">保本保收益</mark>" in page
    assert 'name="override_reason"' in page
    refused = reviewer.post(pack_url + "/approve", data={"csrf_token": csrf_of(page)})
    assert refused.status_code == 422 and "豁免理由" in refused.text
    ok = reviewer.post(pack_url + "/approve", data={"csrf_token": csrf_of(page), "override_reason": "监管口径已确认"})
    assert ok.status_code == 303


def test_reject_withdraw_and_scheduled_approval(page_client):
    expert = page_client("expert")
    first = _new_pack(expert)
    post(expert, first + "/submit")
    reviewer = page_client("reviewer")
    token = csrf_of(reviewer.get(first).text)
    assert reviewer.post(first + "/reject", data={"csrf_token": token, "comment": "请补充期限说明"}).status_code == 303
    page = expert.get(first).text
    assert "已驳回" in page and "请补充期限说明" in page and "退回草稿修改" in page
    assert post(expert, first + "/withdraw").status_code == 409  # rejected → withdraw is not allowed
    post(expert, first + "/revise")
    assert post(expert, first + "/withdraw").status_code == 303
    assert "已撤回" in expert.get(first).text

    second = _new_pack(expert, base_version="1")
    post(expert, second + "/submit")
    later = (utcnow() + timedelta(days=2)).astimezone().strftime("%Y-%m-%dT%H:%M")
    response = reviewer.post(second + "/approve", data={"csrf_token": token, "effective_at": later})
    assert response.status_code == 303 and "msg=scheduled" in response.headers["location"]
    assert "待生效" in reviewer.get(second).text


def test_review_queue_puts_overdue_packs_first(page_client, seeded):
    with session_scope(seeded.engine) as session:
        expert = Actor("expert", "expert")
        fresh = workflow.create_pack(session=session, data={"title": "新提交", "items": [create_item(title="新产品A")]}, actor=expert)
        late = workflow.create_pack(session=session, data={"title": "早已超时", "items": [create_item(title="新产品B")]}, actor=expert)
        workflow.submit_pack(session=session, pack_id=fresh.id, actor=expert)
        workflow.submit_pack(session=session, pack_id=late.id, actor=expert, now=utcnow() - timedelta(hours=30))
    html = page_client("reviewer").get("/review").text
    assert html.index("早已超时") < html.index("新提交")
    row = html[html.rindex("<tr", 0, html.index("早已超时")):html.index("早已超时")]
    assert 'class="overdue"' in row and "已超时" in html


def test_upload_preview_then_save(page_client):
    expert = page_client("expert")
    token = csrf_of(expert.get("/expert/upload").text)
    good = ("操作,条目编号,基准版本,标题,分类,产品类型,风险等级,正文,关键事实\n"
            '修改,WM-030,1,云岭稳享30天持有期理财,产品体系,wealth,R2,"起购金额1元。理财非存款、产品有风险、投资须谨慎。","起购金额=1 元"\n')
    files = {"file": ("周更新.csv", good.encode("utf-8"), "text/csv")}
    preview = expert.post("/expert/upload", data={"csrf_token": token, "action": "preview"}, files=files, headers=HTMX)
    assert preview.status_code == 200 and "文件无错误" in preview.text and "1万元" in preview.text
    bad = good + "新增,,,,理财产品,,R9,正文,\n"
    errors = expert.post("/expert/upload", data={"csrf_token": token, "action": "preview"},
                         files={"file": ("坏.csv", bad.encode("utf-8"), "text/csv")}, headers=HTMX)
    assert "不能保存" in errors.text and "第 3 行" in errors.text
    refused = expert.post("/expert/upload", data={"csrf_token": token, "action": "save"},
                          files={"file": ("坏.csv", bad.encode("utf-8"), "text/csv")})
    assert refused.status_code == 422 and "输入有误" in refused.text
    saved = expert.post("/expert/upload", data={"csrf_token": token, "action": "save", "title": "周更新"}, files=files)
    assert saved.status_code == 303
    assert "周更新" in expert.get(saved.headers["location"]).text


@pytest.mark.parametrize(("size", "shown"), [(None, "0 B"), (900, "900 B"), (1536, "1.5 KB"), (2048, "2 KB"),
                                             (20 * 1024, "20 KB"), (50 * 1024 * 1024, "50 MB"), (3 * 1024 ** 3, "3072 MB")])
def test_byte_counts_read_the_same_on_every_page(size, shown):
    """One formatter for attachment sizes (the `filesize` filter) and the 413 page's limit."""
    from web import messages

    assert messages.file_size(size) == shown
    assert f"上限 {shown}，" in messages.too_large(size or 0)


def test_an_upload_over_the_limit_gets_a_page_not_json(runtime, seeded):
    """Refused before the body is read (declared length over ZHIKU_UPLOAD_MAX_BYTES): a browser gets
    the 413 page in Chinese (htmx: the message area), an API call its JSON error; nothing is saved."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from kb import users
    from review_workflow.models import UpdatePack

    with session_scope(runtime.engine) as session:
        users.create_user(session=session, username="expert", password=PASSWORD, role="expert", actor="test")
    runtime.settings.upload_max_bytes = 2048
    try:
        with TestClient(create_app(runtime=runtime, start_worker=False), follow_redirects=False) as client:
            form = client.get("/login")
            client.post("/login", data={"username": "expert", "password": PASSWORD, "csrf_token": csrf_of(form.text)})
            token = csrf_of(client.get("/expert/upload").text)
            files = {"file": ("周更新.md", ("# 大文件\n" + "长" * 4000).encode("utf-8"), "text/markdown")}
            page = client.post("/expert/upload", data={"csrf_token": token, "action": "save"}, files=files,
                               headers={"Accept": "text/html,application/xhtml+xml"})
            assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")
            assert "上传内容过大" in page.text and "上限 2 KB" in page.text and "未保存任何内容" in page.text
            inline = client.post("/expert/upload", data={"csrf_token": token, "action": "preview"}, files=files,
                                 headers={**HTMX, "Accept": "text/html"})
            assert inline.status_code == 413 and inline.headers["HX-Retarget"] == "#messages"
            api = client.post("/api/v1/packs/upload", files=files)
            assert api.status_code == 413 and api.json()["error"] == "payload_too_large"
    finally:
        runtime.settings.upload_max_bytes = 50 * 1024 * 1024
    with session_scope(runtime.engine) as session:
        assert session.exec(select(UpdatePack)).all() == []


def test_xlsx_template_download(page_client):
    response = page_client("expert").get("/expert/template.xlsx")
    assert response.status_code == 200 and response.content[:2] == b"PK"
    assert "spreadsheetml" in response.headers["content-type"]


# ---------------------------------------------------------------- admin


def test_admin_dashboard_charts_are_inline_svg(page_client):
    agent = page_client("agent")
    for q in ("房贷利率", "房贷利率", "！！！"):
        agent.get("/agent/search", params={"q": q}, headers=HTMX)
    html = page_client("admin").get("/admin").text
    for title in ("更新时效", "更新包状态", "每日检索量", "最常见问题", "零结果问题", "低置信度问题", "超过复核日期的条目", "检索评测历史"):
        assert title in html
    assert html.count("<svg") >= 3 and "目标 24 小时" in html
    assert "房贷利率" in html


def test_admin_users_keys_and_audit(page_client):
    admin = page_client("admin")
    token = csrf_of(admin.get("/admin/users").text)
    created = admin.post("/admin/users", data={"csrf_token": token, "username": "王芳", "password": "long-enough-1",
                                               "role": "reviewer", "department": "合规部"})
    assert created.status_code == 303
    page = admin.get(created.headers["location"]).text
    assert "用户 王芳 已创建" in page and "合规部" in page

    key_page = admin.post("/admin/keys", data={"csrf_token": token, "name": "客服机器人", "scopes": ["retrieve", "search"],
                                               "rate_per_minute": "60"})
    assert key_page.status_code == 201 and "zk_" in key_page.text and "只显示这一次" in key_page.text
    assert admin.post("/admin/keys/1/revoke", data={"csrf_token": token}).status_code == 303
    assert "已吊销" in admin.get("/admin/keys").text

    audit_page = admin.get("/admin/audit", params={"action": "apikey."}).text
    assert "apikey.create" in audit_page and "apikey.revoke" in audit_page and "user.create" not in audit_page
    exported = admin.get("/admin/audit.csv", params={"action": "user."})
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["id", "ts", "actor"] and any("王芳" in r for r in rows[1:])
    verified = admin.post("/admin/audit/verify", data={"csrf_token": token}, headers=HTMX)
    assert verified.status_code == 200 and "校验通过" in verified.text


# ---------------------------------------------------------------- stored XSS, escaped


XSS_TITLE = '<script>alert("t")</script>理财'
XSS_BODY = ('正文<script>alert("b")</script>\n\n<img src=x onerror=alert("i")>\n\n[点我](javascript:alert("l"))\n\n'
            '<a href="javascript:alert(1)">链接</a>\n\n理财非存款、产品有风险、投资须谨慎。')


def test_stored_xss_through_a_pack_is_inert(page_client, seeded):
    expert = page_client("expert")
    form = expert.get("/expert/packs/new")
    response = expert.post("/expert/packs", data={
        "op": "create", "entry_id": "XSS-1", "title": XSS_TITLE, "category": "product", "product_type": "wealth",
        "risk_level": "R2", "summary": '<img src=x onerror=alert("s")>', "body": XSS_BODY,
        "script_template": '<svg onload=alert("st")>', "facts": "起购金额=<b>1</b> 元", "csrf_token": csrf_of(form.text)})
    pack_url = response.headers["location"].split("?")[0]
    post(expert, pack_url + "/submit")
    reviewer = page_client("reviewer")
    review_page = reviewer.get(pack_url).text
    _assert_inert(review_page)
    reviewer.post(pack_url + "/approve", data={"csrf_token": csrf_of(review_page)})
    seeded.drain_outbox()
    agent = page_client("agent")
    for html in (agent.get("/entries/XSS-1").text, agent.get("/agent/cards/XSS-1", headers=HTMX).text,
                 agent.get("/agent/search", params={"q": "理财"}, headers=HTMX).text):
        _assert_inert(html)
        assert "&lt;script&gt;alert(" in html


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.tags.append((tag, attrs))


def _assert_inert(html: str) -> None:
    """No script but our own static files, no event-handler attribute, no javascript: URL, no <img>/<svg> from data."""
    parser = _Tags()
    parser.feed(html)
    for tag, attrs in parser.tags:
        names = dict(attrs)
        if tag == "script":
            assert (names.get("src") or "").startswith("/static/"), names
        assert tag not in ("img", "svg", "iframe", "object", "embed"), tag
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert not (value or "").strip().lower().startswith("javascript:"), (tag, name, value)


def test_dashboard_charts_evaluation_history_when_runs_are_recorded(page_client, seeded):
    quality = pytest.importorskip("retrieval.analytics.quality")
    with session_scope(seeded.engine) as session:
        for value in (0.81, 0.86):
            quality.record_eval_run(session=session, dataset="demo", report={"n": 320, "hit@5": value, "mrr@10": 0.7})
    html = page_client("admin").get("/admin").text
    assert "检索评测 hit@5" in html and "0.860" in html


def test_conversation_panel_without_javascript(page_client):
    agent = page_client("agent")
    page = agent.get("/agent")
    assert 'id="conversation-panel"' in page.text and "开始会话" in page.text
    opened = agent.post("/agent/conversations", data={"customer_id": "C-1", "channel": "wechat",
                                                      "csrf_token": csrf_of(page.text)})
    assert opened.status_code == 303
    panel = agent.get(opened.headers["location"])
    assert "C-1" in panel.text and "微信" in panel.text and 'data-stream="/agent/conversations/' in panel.text
    cid = opened.headers["location"].split("conversation=")[1].split("#")[0]
    said = agent.post(f"/agent/conversations/{cid}/utterances", data={
        "speaker": "customer", "text": "我想问稳享30天理财，身份证530102199001011234", "csrf_token": csrf_of(panel.text)})
    assert said.status_code == 303
    after = agent.get(said.headers["location"])
    assert "云岭稳享30天持有期理财" in after.text and "**************1234" in after.text
    assert "530102199001011234" not in after.text
    refused = agent.post(f"/agent/conversations/{cid}/utterances", data={"speaker": "customer", "text": "你好"})
    assert refused.status_code == 403  # no CSRF token
