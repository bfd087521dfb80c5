"""Attachments over HTTP: uploaded with a pack, listed on the pack, the entry and the card after approval,
downloaded by signed-in staff only, as a file with its Chinese name, never inline."""
from __future__ import annotations

from urllib.parse import quote, unquote

from retrieval.cards import cards_for
from tests.ingestion.test_attachments import MP4, PNG, md
from tests.ingestion.test_parsers import docx_bytes, zip_bytes


def upload(api, login, name: str, data: bytes) -> dict:
    response = api.post("/api/v1/packs", files={"file": (name, data)}, headers=login("expert"))
    assert response.status_code == 201, response.text
    return response.json()


def approve(api, login, pack: dict) -> None:
    assert api.post(f"/api/v1/packs/{pack['id']}/submit", headers=login("expert")).status_code == 200
    response = api.post(f"/api/v1/packs/{pack['id']}/approve", json={"override_reason": "测试"}, headers=login("reviewer"))
    assert response.status_code == 200, response.text


def test_download_with_chinese_name_only_when_signed_in(api, login):
    data = zip_bytes([("条目/開戶.md", md("借記卡開戶流程", entry_id="HTTP-1", traditional=True,
                                          refs=["../圖片/開戶截圖.png", "https://video.example-bank.cn/開戶.mp4"])),
                      ("圖片/開戶截圖.png", PNG)])
    pack = upload(api, login, "培訓資料.zip", data)
    listed = {a["filename"]: a for a in pack["attachments"]}
    assert set(listed) == {"開戶截圖.png", "開戶.mp4"}
    png = listed["開戶截圖.png"]
    assert png["url"] == f"/api/v1/attachments/{png['id']}" and png["size"] == len(PNG)
    assert api.get(f"/api/v1/packs/{pack['id']}/attachments", headers=login("reviewer")).json() == pack["attachments"]

    assert api.get(png["url"]).status_code == 401
    response = api.get(png["url"], headers=login("agent"))
    assert response.status_code == 200 and response.content == PNG
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f"filename*=UTF-8''{quote('開戶截圖.png')}" in disposition
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"] == "image/png"

    assert listed["開戶.mp4"]["url"] == "https://video.example-bank.cn/開戶.mp4"
    link = api.get(f"/api/v1/attachments/{listed['開戶.mp4']['id']}", headers=login("agent"), follow_redirects=False)
    assert link.status_code == 307 and unquote(link.headers["location"]) == "https://video.example-bank.cn/開戶.mp4"
    assert api.get("/api/v1/attachments/not-a-real-id", headers=login("agent")).json()["error"] == "not_found"
    assert api.get("/api/v1/attachments/..%2F..%2Fzhiku.db", headers=login("agent")).status_code == 404


def test_docx_original_is_kept_and_reaches_entry_and_card(api, login, runtime):
    original = docx_bytes([("Heading 1", "第一章 开户"), (None, "携带身份证到网点办理。"),
                           ("Heading 1", "第二章 挂失"), (None, "拨打客服热线办理临时挂失。")])
    pack = upload(api, login, "柜面操作手册（2026版）.docx", original)
    [doc] = pack["attachments"]
    assert doc["filename"] == "柜面操作手册（2026版）.docx" and doc["media_type"].endswith("wordprocessingml.document")
    approve(api, login, pack)
    entry_ids = [i["entry_id"] for i in api.get(f"/api/v1/packs/{pack['id']}", headers=login("expert")).json()["items"]]
    assert len(entry_ids) == 2
    for entry_id in entry_ids:
        listed = api.get(f"/api/v1/entries/{entry_id}/attachments", headers=login("agent")).json()
        assert [a["id"] for a in listed] == [doc["id"]]
    response = api.get(doc["url"], headers=login("agent"))
    assert response.content == original and "filename*=UTF-8''" in response.headers["content-disposition"]
    from sqlmodel import Session

    with Session(runtime.engine) as session:
        cards = cards_for(session=session, entry_ids=entry_ids)
    assert [[(a.filename, a.url, a.size) for a in c.attachments] for c in cards] == \
        [[(doc["filename"], doc["url"], len(original))]] * 2


def test_an_update_keeps_earlier_attachments_and_adds_its_own(api, login, runtime):
    first = upload(api, login, "开户.zip", zip_bytes([("开户.md", md("借记卡开户流程", entry_id="KEEP-1", refs=["截图.png"])),
                                                    ("截图.png", PNG)]))
    approve(api, login, first)
    update = ("---\nop: 修改\nid: KEEP-1\nbase_version: 1\ntitle: 借记卡开户流程\ncategory: 业务流程\n"
              "attachments: [演示.mp4]\n---\n客户本人携带身份证到任一网点或智能柜台办理开户。\n").encode()
    second = upload(api, login, "开户更新.zip", zip_bytes([("开户.md", update), ("演示.mp4", MP4)]))
    approve(api, login, second)
    listed = api.get("/api/v1/entries/KEEP-1/attachments", headers=login("agent")).json()
    assert [a["filename"] for a in listed] == ["截图.png", "演示.mp4"]
    first_version = api.get("/api/v1/entries/KEEP-1/versions/1", headers=login("agent")).json()
    assert first_version["number"] == 1


def test_an_expert_attaches_files_and_links_to_a_typed_draft(api, login, runtime):
    """A pack typed in (no file) gets a screenshot on its item and a training-video link on the pack;
    wrong types, items and people are refused with nothing stored; once submitted, nothing changes;
    on approval the item's screenshot goes with the new version, and every change is audited."""
    from sqlmodel import Session, select

    from kb.models import AuditEvent
    from tests.factories import create_item

    expert = login("expert")
    created = api.post("/api/v1/packs", json={"title": "手工附件", "items": [create_item(title="开户截图说明")]},
                       headers=expert)
    assert created.status_code == 201, created.text
    pack = created.json()
    path = f"/api/v1/packs/{pack['id']}/attachments"
    shot = api.post(path, files={"file": ("开户截图.png", PNG)}, data={"position": "0"}, headers=expert)
    assert shot.status_code == 201, shot.text
    assert shot.json()["filename"] == "开户截图.png" and shot.json()["media_type"] == "image/png"
    video = api.post(path, data={"url": "https://video.example-bank.cn/开户培训.mp4", "title": "开户培训视频"}, headers=expert)
    assert video.status_code == 201 and video.json()["kind"] == "link"

    refused = {
        "svg": api.post(path, files={"file": ("图.svg", b"<svg onload=alert(1)>")}, headers=expert),
        "empty": api.post(path, files={"file": ("空.png", b"")}, headers=expert),
        "both": api.post(path, files={"file": ("a.png", PNG)}, data={"url": "https://x.example.cn/a"}, headers=expert),
        "neither": api.post(path, data={"title": "无"}, headers=expert),
        "javascript": api.post(path, data={"url": "javascript:alert(1)"}, headers=expert),
        "no such item": api.post(path, files={"file": ("b.png", PNG)}, data={"position": "5"}, headers=expert),
    }
    for why, response in refused.items():
        assert response.status_code == 422 and response.json()["error"] == "validation_failed", why
    assert api.post(path, files={"file": ("c.png", PNG)}, headers=login("expert2")).status_code == 403
    assert api.post(path, files={"file": ("c.png", PNG)}, headers=login("agent")).status_code == 403
    listed = api.get(path, headers=expert).json()
    assert sorted(a["filename"] for a in listed) == ["开户培训视频", "开户截图.png"]

    assert api.delete(f"{path}/{video.json()['id']}", headers=login("expert2")).status_code == 403
    assert api.delete(f"{path}/not-in-pack", headers=expert).status_code == 404
    assert api.delete(f"{path}/{video.json()['id']}", headers=expert).status_code == 204
    assert [a["filename"] for a in api.get(path, headers=expert).json()] == ["开户截图.png"]

    approve(api, login, pack)
    late = api.post(path, files={"file": ("d.png", PNG)}, headers=expert)
    assert late.status_code == 409 and late.json()["error"] == "invalid_transition"
    entry_id = api.get(f"/api/v1/packs/{pack['id']}", headers=expert).json()["items"][0]["entry_id"]
    on_entry = api.get(f"/api/v1/entries/{entry_id}/attachments", headers=login("agent")).json()
    assert [(a["filename"], a["id"]) for a in on_entry] == [("开户截图.png", shot.json()["id"])]
    assert api.get(on_entry[0]["url"], headers=login("agent")).content == PNG
    with Session(runtime.engine) as session:
        actions = [e.action for e in session.exec(select(AuditEvent).where(AuditEvent.object_id == pack["id"])).all()]
    assert actions.count("pack.attachment_add") == 2 and actions.count("pack.attachment_remove") == 1
