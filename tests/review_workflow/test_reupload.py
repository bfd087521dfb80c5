"""Uploading a fixed file over a draft: items and attachments replaced; only the submitter, only a draft,
and a bad file leaves the draft exactly as it was — over HTTP and from the CLI."""
from __future__ import annotations

from sqlmodel import Session, select
from typer.testing import CliRunner

from api.cli import app
from review_workflow.models import PackItem, UpdatePack
from tests.ingestion.test_attachments import PNG, md
from tests.ingestion.test_parsers import zip_bytes

HEADER = "操作,条目编号,标题,分类,产品类型,正文\n"


def csv_file(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode("utf-8-sig")


def first_draft(api, login) -> dict:
    data = zip_bytes([("信用卡.md", md("信用卡年费怎么免", entry_id="RE-1", refs=["截图.png"])), ("截图.png", PNG)])
    response = api.post("/api/v1/packs/upload", files={"file": ("周更新.zip", data)}, data={"title": "第48周更新"},
                        headers=login("expert"))
    assert response.status_code == 201, response.text
    return response.json()


def test_reupload_replaces_the_drafts_items_and_attachments(api, login):
    pack = first_draft(api, login)
    assert [i["data"]["title"] for i in pack["items"]] == ["信用卡年费怎么免"] and len(pack["attachments"]) == 1
    fixed = csv_file("新增,RE-2,借記卡掛失怎麼辦,常见问题,debit_card,撥打客服熱線辦理臨時掛失。",
                     "新增,RE-3,手机银行转账限额,常见问题,mobile_banking,单笔限额5万元。")
    response = api.put(f"/api/v1/packs/{pack['id']}/file", files={"file": ("周更新（修正）.csv", fixed)},
                       headers=login("expert"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == pack["id"] and body["state"] == "draft" and body["revision"] == pack["revision"] + 1
    assert [i["data"]["title"] for i in body["items"]] == ["借記卡掛失怎麼辦", "手机银行转账限额"]  # as written
    assert body["title"] == "第48周更新" and body["source"] == "周更新（修正）.csv"
    assert body["attachments"] == []


def test_reupload_by_another_expert_is_forbidden(api, login):
    pack = first_draft(api, login)
    response = api.put(f"/api/v1/packs/{pack['id']}/file", files={"file": ("x.csv", csv_file("新增,X-1,标题,常见问题,,正文"))},
                       headers=login("expert2"))
    assert response.status_code == 403 and response.json()["error"] == "permission_denied"
    assert api.get(f"/api/v1/packs/{pack['id']}", headers=login("expert")).json()["items"] == pack["items"]


def test_reupload_of_a_submitted_pack_is_a_conflict(api, login):
    pack = first_draft(api, login)
    assert api.post(f"/api/v1/packs/{pack['id']}/submit", headers=login("expert")).status_code == 200
    response = api.put(f"/api/v1/packs/{pack['id']}/file", files={"file": ("x.csv", csv_file("新增,X-1,标题,常见问题,,正文"))},
                       headers=login("expert"))
    assert response.status_code == 409 and response.json()["error"] == "invalid_transition"
    assert api.put("/api/v1/packs/no-such-pack/file", files={"file": ("x.csv", b"")},
                   headers=login("expert")).status_code == 404


def test_a_bad_file_leaves_the_draft_unchanged(api, login, runtime):
    pack = first_draft(api, login)
    bad = csv_file("新增,BAD-1,,常见问题,,缺标题", "新增,BAD-2,风险等级错,产品体系,wealth,正文")
    response = api.put(f"/api/v1/packs/{pack['id']}/file", files={"file": ("坏文件.csv", bad)}, headers=login("expert"))
    assert response.status_code == 422, response.text
    assert "坏文件.csv" in response.json()["message"]
    hostile = zip_bytes([("../逃逸.md", md("逃逸"))])
    assert api.put(f"/api/v1/packs/{pack['id']}/file", files={"file": ("恶意.zip", hostile)},
                   headers=login("expert")).status_code == 422
    after = api.get(f"/api/v1/packs/{pack['id']}", headers=login("expert")).json()
    assert after == pack | {"overdue": after["overdue"]}  # same items, revision, source and attachments
    with Session(runtime.engine) as session:
        assert len(session.exec(select(PackItem).where(PackItem.pack_id == pack["id"])).all()) == 1


def test_cli_ingest_replace(data_dir_with_db, tmp_path):
    first = tmp_path / "第一版.csv"
    first.write_bytes(csv_file("新增,CLI-1,信用卡分期手续费,常见问题,credit_card,分期手续费按期收取。"))
    assert CliRunner().invoke(app, ["ingest", str(first), "--as", "expert"]).exit_code == 0
    from kb.db import make_engine

    engine = make_engine(f"sqlite:///{data_dir_with_db / 'zhiku.db'}")
    with Session(engine) as s:
        [pack] = s.exec(select(UpdatePack)).all()
    fixed = tmp_path / "第二版.csv"
    fixed.write_bytes(csv_file("新增,CLI-1,信用卡分期手續費怎麼算,常见问题,credit_card,分期手續費按期收取，每期0.6%。"))
    result = CliRunner().invoke(app, ["ingest", str(fixed), "--as", "expert", "--replace", pack.id])
    assert result.exit_code == 0, result.output
    bad = tmp_path / "坏.csv"
    bad.write_bytes(csv_file("新增,CLI-2,,常见问题,,缺标题"))
    assert CliRunner().invoke(app, ["ingest", str(bad), "--as", "expert", "--replace", pack.id]).exit_code == 1
    with Session(engine) as s:
        assert len(s.exec(select(UpdatePack)).all()) == 1
        assert [i.data["title"] for i in s.exec(select(PackItem)).all()] == ["信用卡分期手續費怎麼算"]
    engine.dispose()
