"""Live conversations over HTTP, WebSocket and SSE: cards follow the customer, stay on small talk,
pins and dismissals hold, a publish reaches open conversations, every card shown is audited."""
from __future__ import annotations

import json
import re
import threading

import pytest
from sqlmodel import Session, select

from ingestion.demo import load_demo
from kb.db import session_scope
from kb.demo import DEMO_PASSWORD
from retrieval.models import Utterance
from tests import factories

BASE = "/api/v1/conversations"
CONTENT_FIELDS = ("title", "body", "summary", "category", "product_type", "risk_level", "facts", "script_template",
                  "tags", "synonyms", "related")


@pytest.fixture(scope="module")
def demo_runtime(tmp_path_factory):
    """One demo knowledge base for the module (tests use their own conversations and customers)."""
    from qdrant_client import QdrantClient

    from api.runtime import Runtime
    from kb.db import make_engine, upgrade
    from kb.settings import Settings
    from retrieval.embedding import HashingEmbedder
    from retrieval.index.client import QdrantClientIndex

    settings = Settings(data_dir=tmp_path_factory.mktemp("conversations"), _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    engine.dispose()
    runtime = Runtime.open(settings, embedder=HashingEmbedder(), index=QdrantClientIndex(QdrantClient(":memory:")))
    with session_scope(runtime.engine) as session:
        load_demo(session=session)  # with the demo accounts agent, expert, reviewer, admin
    runtime.drain_outbox()
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def demo_api(demo_runtime):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(runtime=demo_runtime, start_worker=False)) as client:
        yield client


@pytest.fixture(scope="module")
def login(demo_api):
    from tests.conftest import token_headers

    return token_headers(demo_api, DEMO_PASSWORD)


@pytest.fixture
def runtime(demo_runtime):
    return demo_runtime


def open_conversation(api, headers, **body):
    response = api.post(BASE, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def say(api, headers, cid, text, speaker="customer", final=True):
    response = api.post(f"{BASE}/{cid}/utterances", json={"speaker": speaker, "text": text, "final": final},
                        headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_cards_follow_the_customer_and_ignore_small_talk(demo_api, login):
    h = login("agent")
    cid = open_conversation(demo_api, h, customer_id="C001", channel="phone")["id"]
    assert say(demo_api, h, cid, "喂，你好")["cards"] == []
    first = say(demo_api, h, cid, "我想问一下房贷提前还款怎么办理")
    assert first["changed"] and first["revision"] == 1
    ids = [c["entry_id"] for c in first["cards"]]
    assert "KB-S009" in ids and len(ids) <= 3
    card = first["cards"][ids.index("KB-S009")]
    assert card["reasons"][0].startswith("因为提到：")
    assert re.match(r"KB-S009 第\d+版，\d{4}-\d\d-\d\d起生效", card["citation"]["text"])
    for text in ("好的，谢谢", "我叫王芳，手机尾号3821"):
        again = say(demo_api, h, cid, text)
        assert not again["changed"] and [c["entry_id"] for c in again["cards"]] == ids
    current = demo_api.get(f"{BASE}/{cid}/cards", headers=h).json()
    assert [c["entry_id"] for c in current["cards"]] == ids and current["revision"] == 1


def test_utterances_are_stored_with_digits_masked(demo_api, login, runtime):
    h = login("agent")
    cid = open_conversation(demo_api, h, customer_id="C002")["id"]
    say(demo_api, h, cid, "我的身份证号是530102199001011234")
    say(demo_api, h, cid, "部分内容", final=False)  # partials are not stored
    stored = demo_api.get(f"{BASE}/{cid}/utterances", headers=h).json()
    assert [u["text"] for u in stored] == ["我的身份证号是**************1234"]
    with Session(runtime.engine) as session:
        assert "530102199001011234" not in " ".join(u.text for u in session.exec(select(Utterance)).all())


def test_traditional_script_customer_gets_the_same_cards(demo_api, login):
    h = login("agent")
    simplified = say(demo_api, h, open_conversation(demo_api, h)["id"], "信用卡年费怎么免")
    traditional = say(demo_api, h, open_conversation(demo_api, h)["id"], "信用卡年費怎麼免")
    assert [c["entry_id"] for c in simplified["cards"]] == [c["entry_id"] for c in traditional["cards"]]


def test_pin_and_dismiss(demo_api, login):
    h = login("agent")
    cid = open_conversation(demo_api, h)["id"]
    ids = [c["entry_id"] for c in say(demo_api, h, cid, "房贷提前还款怎么办理")["cards"]]
    pinned = demo_api.post(f"{BASE}/{cid}/cards/KB-S009/pin", headers=h).json()
    assert pinned["changed"] and pinned["event"] == "pinned"
    dropped = next(e for e in ids if e != "KB-S009")
    assert demo_api.post(f"{BASE}/{cid}/cards/{dropped}/dismiss", headers=h).json()["changed"]
    shifted = say(demo_api, h, cid, "另外我想换点美元，每年购汇额度是多少")
    shown = [c["entry_id"] for c in shifted["cards"]]
    assert shown[0] == "KB-S009" and "KB-S032" in shown
    back = say(demo_api, h, cid, "还是说回房贷提前还款的事")
    assert dropped not in [c["entry_id"] for c in back["cards"]]


def test_earlier_conversations_of_the_customer_are_linked(demo_api, login):
    h = login("agent")
    first = open_conversation(demo_api, h, customer_id="C900", channel="app")["id"]
    say(demo_api, h, first, "大额存单可以提前支取吗")
    assert demo_api.post(f"{BASE}/{first}/close", headers=h).json()["closed_at"]
    second = open_conversation(demo_api, h, customer_id="C900", channel="phone")
    assert [p["id"] for p in second["previous"]] == [first]
    assert second["previous"][0]["channel"] == "app" and second["previous"][0]["topics"]
    assert open_conversation(demo_api, h, customer_id="OTHER")["previous"] == []


@pytest.mark.parametrize("body, status", [
    ({"speaker": "customer", "text": "   "}, 422),
    ({"speaker": "robot", "text": "你好"}, 422),
    ({"speaker": "customer", "text": "长" * 2001}, 422),
])
def test_bad_utterances(demo_api, login, body, status):
    h = login("agent")
    cid = open_conversation(demo_api, h)["id"]
    response = demo_api.post(f"{BASE}/{cid}/utterances", json=body, headers=h)
    assert response.status_code == status and response.json()["error"] == "validation_failed"


def test_unknown_and_closed_conversations(demo_api, login):
    h = login("agent")
    assert demo_api.post(f"{BASE}/nope/utterances", json={"speaker": "customer", "text": "你好"}, headers=h).status_code == 404
    assert demo_api.get(f"{BASE}/nope/cards", headers=h).status_code == 404
    cid = open_conversation(demo_api, h)["id"]
    demo_api.post(f"{BASE}/{cid}/close", headers=h)
    response = demo_api.post(f"{BASE}/{cid}/utterances", json={"speaker": "customer", "text": "房贷"}, headers=h)
    assert response.status_code == 409 and response.json()["error"] == "conflict"
    assert demo_api.post(BASE, json={"channel": "fax"}, headers=h).status_code == 422


def test_a_flood_of_partials_is_coalesced(demo_api, login):
    h = login("agent")
    cid = open_conversation(demo_api, h)["id"]
    answers = [say(demo_api, h, cid, "我想问一下房贷提前还款"[: 4 + i], final=False) for i in range(8)]
    assert any(a["coalesced"] for a in answers)  # several a second: most are answered from the current cards
    final = say(demo_api, h, cid, "我想问一下房贷提前还款怎么办理")
    assert "KB-S009" in [c["entry_id"] for c in final["cards"]]


def test_partials_wait_while_any_final_utterance_is_worked_on(demo_api, login):
    """Partials are optional work: while another conversation's final utterance is in hand, a partial is
    answered from the current cards unread; afterwards one with new topic words is looked at again."""
    h = login("agent")
    cid = open_conversation(demo_api, h)["id"]
    coalescer = demo_api.app.state.runtime.coalescer
    with coalescer.final("another-conversation"):
        assert coalescer.finals_running() == 1
        waiting = say(demo_api, h, cid, "大额存单能提前支取吗", final=False)
        assert waiting["coalesced"] and waiting["cards"] == []
    assert coalescer.finals_running() == 0
    looked_at = say(demo_api, h, cid, "大额存单能提前支取吗", final=False)
    assert not looked_at["coalesced"]


def test_websocket_pushes_changes_and_resumes_from_the_current_cards(demo_api, login):
    h = login("agent")
    token = h["Authorization"].split()[1]
    cid = open_conversation(demo_api, h)["id"]
    with demo_api.websocket_connect(f"{BASE}/{cid}/stream?access_token={token}") as ws:
        assert json.loads(ws.receive_text())["event"] == "snapshot"
        say(demo_api, h, cid, "房贷提前还款怎么办理")
        pushed = json.loads(ws.receive_text())
        assert pushed["event"] == "cards" and "KB-S009" in [c["entry_id"] for c in pushed["cards"]]
    # a dropped socket reconnects and starts from the current card set
    with demo_api.websocket_connect(f"{BASE}/{cid}/stream", headers=h) as ws:
        snapshot = json.loads(ws.receive_text())
        assert snapshot["event"] == "snapshot" and snapshot["revision"] == pushed["revision"]
        assert [c["entry_id"] for c in snapshot["cards"]] == [c["entry_id"] for c in pushed["cards"]]


def test_websocket_refuses_bad_credentials_and_unknown_ids(demo_api, login):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as refused:
        with demo_api.websocket_connect(f"{BASE}/x/stream?access_token=wrong") as ws:
            ws.receive_text()
    assert refused.value.code == 4401
    with pytest.raises(WebSocketDisconnect) as missing:
        with demo_api.websocket_connect(f"{BASE}/nope/stream", headers=login("agent")) as ws:
            ws.receive_text()
    assert missing.value.code == 4404


def test_sse_sends_the_snapshot_then_changes(demo_api, login):
    h = login("agent")
    cid = open_conversation(demo_api, h)["id"]
    say(demo_api, h, cid, "大额存单可以提前支取吗")
    events: list[dict] = []
    with demo_api.stream("GET", f"{BASE}/{cid}/events", headers=h) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        threading.Timer(0.5, lambda: say(demo_api, h, cid, "另外我想换点美元，每年购汇额度是多少")).start()
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if len(events) == 2:
                    break
    assert events[0]["event"] == "snapshot" and events[1]["event"] == "cards"
    assert events[1]["revision"] == events[0]["revision"] + 1


def test_a_publish_reaches_open_conversations_with_the_change_notice(demo_api, login, runtime):
    h = login("agent")
    cid = open_conversation(demo_api, h, customer_id="C777")["id"]
    shown = say(demo_api, h, cid, "房贷提前还款怎么办理")
    assert "KB-S009" in [c["entry_id"] for c in shown["cards"]]
    current = demo_api.get("/api/v1/entries/KB-S009", headers=h).json()["current"]
    content = {k: current[k] for k in CONTENT_FIELDS}
    item = {"op": "update", "entry_id": "KB-S009", "base_version": current["number"], **content,
            "summary": "房贷可部分或全部提前还款，部分还款每次不少于5万元。"}
    pack = demo_api.post("/api/v1/packs", json=factories.pack_data(item, title="提前还款起点调整"),
                         headers=login("expert")).json()
    assert demo_api.post(f"/api/v1/packs/{pack['id']}/submit", headers=login("expert")).status_code == 200
    approved = demo_api.post(f"/api/v1/packs/{pack['id']}/approve", json={"revision": pack["revision"]},
                             headers=login("reviewer"))
    assert approved.status_code == 200, approved.text
    with demo_api.websocket_connect(f"{BASE}/{cid}/stream", headers=h) as ws:
        json.loads(ws.receive_text())  # snapshot
        runtime.worker.run_once()  # the worker's tick finds the notice and pushes
        pushed = json.loads(ws.receive_text())
    card = next(c for c in pushed["cards"] if c["entry_id"] == "KB-S009")
    assert pushed["event"] == "update" and card["version"] == current["number"] + 1 and card["changed"]
    assert card["change_message"] == "该产品信息已变更，请注意话术更新" and card["change_summary"]
    log = demo_api.get("/api/v1/card-impressions", params={"customer_id": "C777"}, headers=login("reviewer")).json()
    assert {(r["entry_id"], r["version"], r["action"]) for r in log["data"]} >= {
        ("KB-S009", card["version"] - 1, "shown"), ("KB-S009", card["version"], "updated")}


def test_card_impressions_are_searchable_in_one_query(demo_api, login):
    h = login("agent")
    cid = open_conversation(demo_api, h, customer_id="C555", channel="wechat")["id"]
    say(demo_api, h, cid, "房贷提前还款怎么办理")
    reviewer = login("reviewer")
    rows = demo_api.get("/api/v1/card-impressions", params={"customer_id": "C555", "category": "业务流程",
                                                            "product_type": "mortgage", "from": "2000-01-01T00:00:00Z"},
                        headers=reviewer).json()
    assert rows["count"] >= 1
    assert all(r["customer_id"] == "C555" and r["category"] == "process" and r["channel"] == "wechat" for r in rows["data"])
    assert {r["agent"] for r in rows["data"]} == {"agent"}
    csv = demo_api.get("/api/v1/card-impressions", params={"customer_id": "C555", "format": "csv"}, headers=reviewer)
    assert csv.text.lstrip("\ufeff").startswith("id,ts,conversation_id")
    assert demo_api.get("/api/v1/card-impressions", headers=h).status_code == 403


def test_bots_need_the_conversations_scope(demo_api, login):
    admin = login("admin")
    key = demo_api.post("/api/v1/api-keys", json={"name": "呼叫中心转写", "scopes": ["conversations"]}, headers=admin).json()["key"]
    other = demo_api.post("/api/v1/api-keys", json={"name": "机器人", "scopes": ["retrieve"]}, headers=admin).json()["key"]
    assert demo_api.post(BASE, json={"channel": "phone"}, headers={"X-API-Key": other}).status_code == 403
    cid = open_conversation(demo_api, {"X-API-Key": key}, channel="phone")["id"]
    assert say(demo_api, {"X-API-Key": key}, cid, "房贷提前还款怎么办理")["changed"]
