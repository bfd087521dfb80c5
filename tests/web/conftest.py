"""Web fixtures: page clients signed in per role, seeded entries, and for browser tests a real uvicorn
server in a background thread plus Debian's chromium driven by Playwright."""
from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kb import service
from kb.db import session_scope
from tests.conftest import PASSWORD
from tests.factories import entry_data

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')

# A wealth product, a mortgage FAQ and the LPR entry it links to.
SEED = [
    entry_data(id="WM-030", title="云岭稳享30天持有期理财", product_type="wealth", risk_level="R2",
               summary="R2 级净值型理财，1万元起购，持有满30天可赎回。", synonyms=["稳享30天"], related=["LPR"]),
    entry_data(id="MORT-RATE", title="房贷利率", category="常见问题", product_type="mortgage", risk_level=None, facts={},
               body="首套房贷利率以最新LPR报价为基准加点确定。", summary="房贷利率 = LPR + 加点。",
               script_template="您好，房贷利率以最新LPR报价为基准。", tags=["房贷"], synonyms=["按揭利率"], related=["LPR"]),
    entry_data(id="LPR", title="最新LPR报价", category="产品体系", product_type="mortgage", risk_level=None,
               facts={"5年期以上LPR": {"value": "3.5", "unit": "%"}}, body="5年期以上LPR为3.5%。", summary="LPR 月度报价。",
               script_template="最新5年期以上LPR为3.5%。", tags=["LPR"], synonyms=[]),
]


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


@pytest.fixture
def seeded(runtime):
    """Three entries in force and indexed."""
    with session_scope(runtime.engine) as session:
        for data in SEED:
            service.create_entry(session=session, data=dict(data), actor="seed")
    runtime.drain_outbox()
    return runtime


@pytest.fixture
def page_client(api, seeded) -> Callable[[str | None], TestClient]:
    """page_client(username) → a TestClient with its own cookie jar, signed in through the login form
    (None: signed out). Shares the app (and its runtime) of the `api` fixture."""
    clients: list[TestClient] = []

    def make(username: str | None) -> TestClient:
        client = TestClient(api.app, follow_redirects=False)
        clients.append(client)
        if username:
            form = client.get("/login")
            response = client.post("/login", data={"username": username, "password": PASSWORD,
                                                   "csrf_token": csrf_of(form.text)})
            assert response.status_code == 303, response.text
        return client

    yield make
    for client in clients:
        client.close()


# ---------------------------------------------------------------- browser


def chromium_or_skip() -> str:
    """Debian's chromium; missing → a failure in CI (CI=true), a skip on a developer machine."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    message = f"{CHROMIUM} is missing (apt-get install chromium fonts-noto-cjk)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " — browser tests must run in CI")
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser():
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn serving create_app(runtime=…) on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, runtime) -> None:  # type: ignore[no-untyped-def]
        import uvicorn

        from api.app import create_app

        self.runtime = runtime
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(runtime=runtime, start_worker=False), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def live_server(seeded) -> Iterator[LiveServer]:
    """A real HTTP server on the seeded runtime (users agent/expert/reviewer/reviewer2/admin)."""
    from kb import users

    with session_scope(seeded.engine) as session:
        for name, role in (("agent", "agent"), ("expert", "expert"), ("reviewer", "reviewer"),
                           ("reviewer2", "reviewer"), ("admin", "admin")):
            users.create_user(session=session, username=name, password=PASSWORD, role=role, actor="test",
                              department={"agent": "客户服务中心", "expert": "财富管理部", "admin": "信息技术部"}.get(name, "合规部"))
    with LiveServer(seeded) as server:
        yield server


@pytest.fixture
def open_page(browser, live_server):
    """open_page(username, width=1366, height=768) → a Playwright page signed in as that user, in its
    own browser context. Every dialog is recorded in page.dialogs (the XSS test asserts none)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    contexts = []

    def make(username: str | None, *, width: int = 1366, height: int = 768):  # type: ignore[no-untyped-def]
        context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                      base_url=live_server.url, timezone_id="Asia/Shanghai")
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = context.new_page()
        page.dialogs = []  # type: ignore[attr-defined]
        page.console_errors = []  # type: ignore[attr-defined]

        def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
            page.dialogs.append(dialog.message)  # type: ignore[attr-defined]
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))  # type: ignore[attr-defined]
        if username:
            page.goto("/login")
            page.get_by_label("用户名").fill(username)
            page.get_by_label("密码").fill(PASSWORD)
            page.get_by_role("button", name="登录").click()
            expect(page.get_by_role("button", name="退出登录")).to_be_visible()
        return page

    yield make
    for context in contexts:
        context.close()
