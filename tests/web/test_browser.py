"""End to end in Debian's chromium (Playwright, sync API) against a real uvicorn server: each role's
main flow, keyboard use in the narrow agent sidebar, and a stored-XSS attempt that must stay inert."""
from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

CSV = ("操作,条目编号,基准版本,标题,分类,产品类型,风险等级,正文,关键事实\n"
       '修改,LPR,1,最新LPR报价,产品体系,mortgage,,"5年期以上LPR为3.45%。","5年期以上LPR=3.45 %"\n')


def expect():  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect as _expect

    return _expect


def approve_first_in_queue(page, title: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/review")
    page.get_by_role("link", name=title).first.click()
    expect()(page.get_by_role("heading", name="审核")).to_be_visible()
    page.get_by_role("button", name="批准").click()
    expect()(page.locator("#messages")).to_contain_text("已批准")


def test_expert_form_pack_is_approved_and_the_agent_sees_the_changed_card(open_page, live_server):
    expert = open_page("expert")
    expert.goto("/entries/WM-030")
    expert.get_by_role("link", name="修改此条目").click()
    expect()(expert.get_by_label("标题", exact=True)).to_have_value("云岭稳享30天持有期理财")  # prefilled
    expert.get_by_label("更新包标题").fill("稳享30天起购金额下调")
    expert.get_by_label("摘要").fill("R2 级净值型理财，1元起购，持有满30天可赎回。")
    expert.get_by_label("关键事实（每行一条：名称=值 单位）").fill("起购金额=1 元\n期限=90 天")
    expert.get_by_role("button", name="保存为草稿").click()
    expect()(expert.locator("#messages")).to_contain_text("草稿已保存")
    expect()(expert.locator(".diff-table").first).to_contain_text("1万元")
    expert.get_by_role("button", name="提交审核").click()
    expect()(expert.locator(".page-head .state")).to_have_text("待审核")
    expert.goto("/expert/packs")
    expect()(expert.get_by_role("row", name=re.compile("稳享30天起购金额下调"))).to_contain_text("待审核")

    reviewer = open_page("reviewer")
    approve_first_in_queue(reviewer, "稳享30天起购金额下调")
    live_server.runtime.drain_outbox()

    agent = open_page("agent")
    agent.context.grant_permissions(["clipboard-read", "clipboard-write"])
    agent.goto("/agent")
    agent.get_by_label("搜索知识（关键词或客户原话）").press_sequentially("稳享30天理财", delay=30)
    result = agent.locator(".result", has_text="云岭稳享30天持有期理财").first
    expect()(result).to_be_visible()
    expect()(result.locator(".badge-changed")).to_have_text("已变更")
    expect()(result.locator("mark").first).to_be_visible()
    card = agent.locator("#card-pane .card")
    expect()(card).to_contain_text("该产品信息已变更，请注意话术更新")
    expect()(card).to_contain_text("起购金额：1万元 → 1元")
    expect()(card.locator(".citation")).to_contain_text("WM-030 第2版")
    card.get_by_role("button", name="复制话术").click()
    expect()(card.get_by_role("button", name="已复制")).to_be_visible()
    assert "1万元" in agent.evaluate("navigator.clipboard.readText()")
    card.get_by_role("button", name="有帮助", exact=True).click()
    expect()(card.locator(".feedback-done")).to_contain_text("已记录您的反馈")
    card.get_by_role("link", name="云岭稳享30天持有期理财").click()
    expect()(agent.get_by_role("heading", name="版本对比")).to_be_visible()
    expect()(agent.locator(".diff-table td.ins", has_text="1元").first).to_be_visible()
    assert not agent.console_errors, agent.console_errors


def test_expert_upload_preview_save_submit(open_page):
    expert = open_page("expert")
    expert.goto("/expert/upload")
    expert.get_by_label("文件").set_input_files({"name": "LPR调整.csv", "mimeType": "text/csv", "buffer": CSV.encode()})
    expert.get_by_role("button", name="预览").click()
    preview = expert.locator("#preview")
    expect()(preview).to_contain_text("文件无错误")
    expect()(preview.locator(".diff-table")).to_contain_text("3.45%")
    expert.get_by_role("button", name="保存为草稿").click()  # the chosen file is still in the form
    expect()(expert.locator("#messages")).to_contain_text("草稿已保存")
    expert.get_by_role("button", name="提交审核").click()
    expect()(expert.locator(".page-head .state")).to_have_text("待审核")
    expect()(expert.locator(".page-head")).to_contain_text("SLA 截止")


def test_reviewer_rejects_and_four_eyes_blocks_self_approval(open_page):
    admin = open_page("admin")
    admin.goto("/expert/packs/new?op=retire&entry_id=LPR")
    admin.get_by_label("下线原因").fill("报价改为按月更新的新条目")
    admin.get_by_role("button", name="保存为草稿").click()
    admin.get_by_role("button", name="提交审核").click()
    expect()(admin.locator(".four-eyes")).to_contain_text("四眼原则")
    expect()(admin.get_by_role("button", name="批准")).to_have_count(0)

    reviewer = open_page("reviewer")
    reviewer.goto("/review")
    reviewer.get_by_role("link", name=re.compile("下线")).first.click()
    reviewer.get_by_label("驳回意见").fill("请先发布替代条目")
    reviewer.get_by_role("button", name="驳回").click()
    expect()(reviewer.locator(".page-head .state")).to_have_text("已驳回")
    expect()(reviewer.locator(".reviews")).to_contain_text("请先发布替代条目")


def test_admin_dashboard_and_audit_chain(open_page):
    admin = open_page("admin")
    expect()(admin.get_by_role("heading", name="运营仪表盘")).to_be_visible()
    expect()(admin.locator("svg.chart-svg").first).to_be_visible()
    expect()(admin.locator("text.chart-target")).to_have_text("目标 24 小时")
    admin.get_by_role("link", name="审计日志").click()
    admin.get_by_role("button", name="校验哈希链").click()
    expect()(admin.locator("#chain-result")).to_contain_text("审计哈希链校验通过")
    admin.get_by_role("link", name="用户与部门").click()
    expect()(admin.get_by_role("heading", name=re.compile("财富管理部"))).to_be_visible()


def test_narrow_agent_sidebar_is_keyboard_usable(open_page):
    agent = open_page("agent", width=400, height=800)
    agent.goto("/agent")
    agent.keyboard.press("Tab")
    skip = agent.get_by_role("link", name="跳到主要内容")
    expect()(skip).to_be_focused()
    outline = skip.evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline != "none"
    search = agent.get_by_label("搜索知识（关键词或客户原话）")
    search.focus()
    agent.keyboard.type("房贷利率", delay=30)
    expect()(agent.locator(".result").first).to_contain_text("房贷利率")
    width = agent.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"horizontal scroll at 400 px: {width}"
    expect()(agent.locator("#conversation-panel")).to_be_attached()


def test_stored_xss_stays_inert_in_the_browser(open_page, live_server):
    expert = open_page("expert")
    expert.goto("/expert/packs/new")
    expert.get_by_label("条目编号（可选）").fill("XSS-9")
    expert.get_by_label("标题", exact=True).fill('<script>window.__xss=1;alert("t")</script>稳健理财')
    expert.get_by_label("产品类型").select_option("wealth")
    expert.get_by_label("风险等级").select_option("R2")
    expert.get_by_label("摘要").fill('<img src=x onerror="window.__xss=2;alert(2)">')
    expert.get_by_label("正文（Markdown）").fill(
        '正文<script>window.__xss=3</script>\n\n<img src=x onerror="window.__xss=4;alert(4)">\n\n'
        '[点我](javascript:window.__xss=5)\n\n理财非存款、产品有风险、投资须谨慎。')
    expert.get_by_label("话术模板").fill('<svg onload="window.__xss=6;alert(6)"></svg>您好')
    expert.get_by_role("button", name="保存为草稿").click()
    expert.get_by_role("button", name="提交审核").click()
    expect()(expert.locator(".page-head .state")).to_have_text("待审核")

    reviewer = open_page("reviewer")
    approve_first_in_queue(reviewer, '<script>window.__xss=1;alert("t")</script>稳健理财')
    live_server.runtime.drain_outbox()

    agent = open_page("agent")
    agent.goto("/entries/XSS-9")
    expect()(agent.get_by_role("heading", level=1)).to_contain_text("<script>window.__xss=1")  # shown as text
    expect()(agent.locator(".prose a", has_text="点我")).to_have_count(0)  # the javascript: link is not a link
    agent.goto("/agent")
    agent.get_by_label("搜索知识（关键词或客户原话）").fill("稳健理财")
    agent.locator(".result-title", has_text="稳健理财").click()  # its card, whichever result comes first
    expect()(agent.locator("#card-pane .card")).to_contain_text("<svg onload")
    for page in (reviewer, agent):
        assert page.dialogs == [], page.dialogs
        assert page.evaluate("window.__xss") is None
        assert page.locator("img, svg:not(.chart-svg), script:not([src])").count() == 0


def test_agent_conversation_panel_follows_the_customer_and_receives_a_published_change(open_page, live_server):
    from kb.db import session_scope
    from kb.models import Actor
    from review_workflow import service as workflow
    from tests.factories import pack_data, update_item
    from tests.web.conftest import SEED

    agent = open_page("agent")
    agent.goto("/agent")
    panel = agent.locator("#conversation-panel")
    panel.get_by_label("客户号（可选）").fill("C-BROWSER")
    panel.get_by_role("button", name="开始会话").click()
    expect()(panel.locator(".conversation .meta")).to_contain_text("C-BROWSER")
    panel.get_by_label("内容").fill("你好")
    panel.get_by_role("button", name="发送").click()
    expect()(panel.locator("#transcript .turn")).to_have_count(1)
    panel.get_by_label("内容").fill("我想问一下稳享30天理财怎么起购")
    panel.get_by_role("button", name="发送").click()
    live = panel.locator("#live-cards .card", has_text="云岭稳享30天持有期理财")
    expect()(live).to_be_visible()
    expect()(live.locator(".reasons")).to_contain_text("因为提到")

    # An expert's change is approved while the conversation is open: the card is pushed with its notice.
    with session_scope(live_server.runtime.engine) as session:
        seed = next(s for s in SEED if s["id"] == "WM-030")
        pack = workflow.create_pack(session=session, actor=Actor("expert", "expert"), data=pack_data(
            update_item(seed, 1, summary="R2 级净值型理财，1元起购，持有满30天可赎回。",
                        facts={"起购金额": {"value": "1", "unit": "元"}, "期限": {"value": "90", "unit": "天"}})))
        workflow.submit_pack(session=session, pack_id=pack.id, actor=Actor("expert", "expert"))
        workflow.approve_pack(session=session, pack_id=pack.id, data={}, actor=Actor("reviewer", "reviewer"))
    live_server.runtime.worker.run_once()  # the worker's tick notices the change and pushes it
    expect()(live.locator(".change-notice")).to_contain_text("该产品信息已变更，请注意话术更新")
    expect()(live.locator(".citation")).to_contain_text("WM-030 第2版")
    assert not agent.console_errors, agent.console_errors
