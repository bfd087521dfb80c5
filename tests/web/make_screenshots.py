"""Screenshots of every page for the README: a throw-away demo installation (the demo knowledge base,
the demo accounts, some packs and searches) served by uvicorn and photographed by Debian's chromium.

    .venv/bin/python -m tests.web.make_screenshots [--out docs/screenshots]

`tests/web/test_screenshots.py` runs the same script into a temp dir, so it keeps working.
"""
from __future__ import annotations

import argparse
import tempfile
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "docs" / "screenshots"
PASSWORD = "zhiku-demo"
UPDATED = "KB-P036"  # 云岭日日盈: its change is what the agent's card announces
LPR_CSV = ("操作,条目编号,基准版本,标题,分类,产品类型,风险等级,正文,关键事实\n"
           '修改,KB-P036,1,云岭日日盈现金管理类理财,产品体系,wealth,R1,"0.01元起购，快速赎回每日上限5000元。理财非存款、产品有风险、投资须谨慎。","快速赎回上限=5000 元/日"\n')


def build_demo(data_dir: Path):  # type: ignore[no-untyped-def]
    """A runtime on a fresh database with the demo knowledge base and some activity."""
    from qdrant_client import QdrantClient

    from api.runtime import Runtime
    from ingestion.demo import load_demo
    from kb import service
    from kb.db import make_engine, upgrade
    from kb.models import Actor
    from kb.settings import Settings
    from kb.timeutil import utcnow
    from retrieval.embedding import HashingEmbedder
    from retrieval.index.client import QdrantClientIndex
    from retrieval.logs import log_search
    from review_workflow import service as workflow

    settings = Settings(data_dir=data_dir, _env_file=None)  # type: ignore[call-arg]
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    engine.dispose()
    runtime = Runtime.open(settings, embedder=HashingEmbedder(), index=QdrantClientIndex(QdrantClient(":memory:")))
    expert, reviewer = Actor("expert", "expert"), Actor("reviewer", "reviewer")
    now = utcnow()
    with Session(runtime.engine, expire_on_commit=False) as session:
        load_demo(session=session)
        current = service.get_version(session=session, entry_id=UPDATED, number=1)
        facts = dict(current.facts) | {"快速赎回上限": {"value": "5000", "unit": "元/日"}}
        published = workflow.create_pack(session=session, actor=expert, now=now - timedelta(hours=3), data={
            "title": "日日盈快速赎回额度调整", "items": [{"op": "update", "entry_id": UPDATED, "base_version": 1,
                                                  "title": current.title, "category": current.category,
                                                  "product_type": current.product_type, "risk_level": current.risk_level,
                                                  "summary": current.summary.replace("1万元", "5000元"),
                                                  "body": current.body.replace("1万元", "5000元"), "facts": facts,
                                                  "script_template": current.script_template.replace("1万元", "5000元"),
                                                  "tags": current.tags, "synonyms": current.synonyms,
                                                  "related": current.related,
                                                  "review_by": current.review_by.isoformat() if current.review_by else None}]})
        workflow.submit_pack(session=session, pack_id=published.id, actor=expert, now=now - timedelta(hours=3))
        workflow.approve_pack(session=session, pack_id=published.id, data={"comment": "同意"}, actor=reviewer,
                              now=now - timedelta(hours=1))
        risky = workflow.create_pack(session=session, actor=expert, now=now - timedelta(hours=31), data={"title": "新发理财产品上架（含违规话术）", "items": [{
            "op": "create", "entry_id": "KB-P900", "title": "云岭稳盈180天理财", "category": "product",
            "product_type": "wealth", "risk_level": "R2", "summary": "R2 级理财，1万元起购。",
            "body": "本产品保本保收益，业绩比较基准年化3.2%。\n起购金额1万元。",
            "facts": {"起购金额": {"value": "1", "unit": "万元"}}, "script_template": "您好，这款理财稳赚不赔。"}]})
        workflow.submit_pack(session=session, pack_id=risky.id, actor=expert, now=now - timedelta(hours=30))
        pending = workflow.create_pack(session=session, actor=expert, now=now - timedelta(hours=2, minutes=20), data={"title": "信用卡分期手续费说明更新", "items": [{
            "op": "create", "entry_id": "KB-F900", "title": "信用卡账单分期手续费怎么算", "category": "faq",
            "product_type": "credit_card", "body": "账单分期手续费按期收取，费率以分期时页面展示为准。",
            "summary": "分期手续费按期收取。"}]})
        workflow.submit_pack(session=session, pack_id=pending.id, actor=expert, now=now - timedelta(hours=2))
        workflow.create_pack(session=session, actor=expert, data={"title": "大额存单利率（草稿）", "items": [{
            "op": "create", "title": "大额存单2026年第二期利率", "category": "product", "product_type": "large_cd",
            "body": "3年期年利率2.15%，20万元起存。", "summary": "3年期2.15%。"}]})
        session.commit()
    runtime.drain_outbox()
    with Session(runtime.engine) as session:
        for query in ("日日盈快速赎回", "房贷利率", "房贷利率", "数字人民币怎么开通", "信用卡分期", "房贷利率",
                      "信用卡分期", "外汇牌价", "！！", "养老金账户"):
            log_search(session=session, actor="agent", role="agent", kind="search", response=runtime.searcher.search(query))
        try:  # evaluation history for the dashboard, when the analytics module is present
            from retrieval.analytics.quality import record_eval_run

            for days, hit5 in ((21, 0.84), (14, 0.87), (7, 0.9)):
                record_eval_run(session=session, dataset="demo-320", report={"n": 320, "hit@5": hit5},
                                ts=now - timedelta(days=days))
        except ImportError:
            pass
        session.commit()
    return runtime


def take(out: Path, browser=None) -> list[Path]:  # type: ignore[no-untyped-def]
    """Serve the demo and photograph every page; returns the files written. Pass a running Playwright
    `browser` (tests), or one is launched here."""
    if browser is None:
        from playwright.sync_api import sync_playwright

        from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                return take(out, launched)
            finally:
                launched.close()
    from playwright.sync_api import expect

    from tests.web.conftest import LiveServer

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="zhiku-shots-") as tmp:
        runtime = build_demo(Path(tmp) / "data")
        try:
            with LiveServer(runtime) as server:
                expect.set_options(timeout=30_000)

                def page_for(username: str | None, width: int = 1366, height: int = 768):  # type: ignore[no-untyped-def]
                    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                                  base_url=server.url, timezone_id="Asia/Shanghai")
                    context.set_default_timeout(30_000)
                    page = context.new_page()
                    if username:
                        page.goto("/login")
                        page.get_by_label("用户名").fill(username)
                        page.get_by_label("密码").fill(PASSWORD)
                        page.get_by_role("button", name="登录").click()
                        expect(page.get_by_role("button", name="退出登录")).to_be_visible()
                    return page

                def shot(page, name: str, full: bool = False) -> None:  # type: ignore[no-untyped-def]
                    path = out / f"{name}.png"
                    page.screenshot(path=str(path), full_page=full)
                    written.append(path)

                login = page_for(None)
                login.goto("/login")
                shot(login, "01-login")

                agent = page_for("agent")
                agent.get_by_label("搜索知识（关键词或客户原话）").fill("日日盈快速赎回")
                expect(agent.locator("#card-pane .change-notice")).to_be_visible()
                shot(agent, "02-agent-workspace")
                agent.goto(f"/entries/{UPDATED}")
                agent.locator("#diff").scroll_into_view_if_needed()
                shot(agent, "03-entry-history-diff")

                narrow = page_for("agent", width=400, height=860)
                narrow.get_by_label("搜索知识（关键词或客户原话）").fill("房贷利率")
                expect(narrow.locator(".result").first).to_be_visible()
                shot(narrow, "04-agent-sidebar-400px", full=False)

                expert = page_for("expert")
                shot(expert, "05-expert-my-packs")
                expert.goto(f"/expert/packs/new?op=update&entry_id={UPDATED}")
                shot(expert, "06-expert-pack-form")
                expert.goto("/expert/upload")
                expert.get_by_label("文件").set_input_files({"name": "周更新.csv", "mimeType": "text/csv",
                                                           "buffer": LPR_CSV.encode()})
                expert.get_by_role("button", name="预览").click()
                expect(expert.locator("#preview .diff-table")).to_be_visible()
                shot(expert, "07-expert-upload-preview")

                reviewer = page_for("reviewer")
                shot(reviewer, "08-review-queue")
                reviewer.get_by_role("link", name="新发理财产品上架（含违规话术）").click()
                expect(reviewer.locator("mark.lint-block").first).to_be_visible()
                shot(reviewer, "09-review-pack-lint", full=True)

                admin = page_for("admin")
                shot(admin, "10-admin-dashboard", full=True)
                admin.goto("/admin/users")
                shot(admin, "11-admin-users")
                admin.goto("/admin/keys")
                shot(admin, "12-admin-api-keys")
                admin.goto("/admin/audit")
                admin.get_by_role("button", name="校验哈希链").click()
                expect(admin.locator("#chain-result .chain-report")).to_be_visible()
                shot(admin, "13-admin-audit")
                for context in browser.contexts:
                    context.close()
        finally:
            runtime.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of every web page into docs/screenshots/.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    for path in take(args.out):
        print(path)


if __name__ == "__main__":
    main()
