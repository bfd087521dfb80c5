"""Update packs from files, as an expert uploads them: preview, errors that name the row, nothing
saved on error, identical re-upload changes nothing — through the service, the CLI and HTTP."""
from __future__ import annotations

import json

from sqlmodel import func, select
from typer.testing import CliRunner

from api.cli import app
from kb import service as kb
from kb.models import Actor
from review_workflow.models import UpdatePack
from review_workflow.upload import pack_from_upload, preview_upload
from tests.factories import entry_data

EXPERT = Actor("expert", "expert")
HEADER = "操作,条目编号,基准版本,标题,分类,产品类型,风险等级,正文,关键事实\n"


def csv_bytes(rows: str, encoding: str = "utf-8") -> bytes:
    return (HEADER + rows).encode(encoding)


def existing(session):
    data = entry_data(id="WM-9", title="云岭稳享9号理财", valid_from="2026-01-01")
    kb.create_entry(session=session, data=data, actor="expert")
    return data


def test_gbk_csv_preview_shows_the_fact_diff_and_lint(session):
    existing(session)
    rows = ('修改,WM-9,1,云岭稳享9号理财,产品体系,wealth,R2,"本产品为净值型理财产品。起购金额1元。理财非存款、产品有风险、投资须谨慎。",'
            '"起购金额=1 元\n期限=90 天"\n')
    preview, _ = preview_upload(session=session, filename="周更新.csv", data=csv_bytes(rows, "gbk"))
    assert preview.ok, preview.errors
    [item] = preview.items
    assert item.op == "update" and item.entry_id == "WM-9"
    assert {"key": "起购金额", "before": "1万元", "after": "1元", "change": "changed"} in item.changes


def test_a_bad_row_is_named_and_nothing_is_saved(session):
    rows = "新增,,,,常见问题,,,,\n新增,NEW-1,,新条目,理财产品,,R9,正文,\n"
    preview, _ = preview_upload(session=session, filename="坏文件.csv", data=csv_bytes(rows))
    assert not preview.ok
    assert any("row 2" in e["message"] or e.get("row") == 2 for e in preview.errors)
    before = session.exec(select(func.count()).select_from(UpdatePack)).one()
    try:
        pack_from_upload(session=session, filename="坏文件.csv", data=csv_bytes(rows), actor=EXPERT)
    except Exception as exc:  # noqa: BLE001 - the type is asserted below
        assert type(exc).__name__ == "ValidationFailed"
    session.rollback()
    assert session.exec(select(func.count()).select_from(UpdatePack)).one() == before


def test_identical_reupload_yields_no_new_versions(session):
    data = entry_data(id="WM-8", title="云岭稳享8号理财", valid_from="2026-01-01", summary="", script_template="",
                      tags=[], synonyms=[], review_by=None)
    kb.create_entry(session=session, data=data, actor="expert")
    same = (f'修改,WM-8,1,{data["title"]},产品体系,wealth,R2,"{data["body"]}",'
            '"起购金额=1 万元\n期限=90 天"\n')
    pack, preview = pack_from_upload(session=session, filename="同样内容.csv", data=csv_bytes(same), actor=EXPERT)
    assert [i.unchanged for i in preview.items] == [True], preview.items[0].changes
    assert pack.title == "文件导入：同样内容.csv"


def test_cli_ingest_saves_a_draft_and_submits(data_dir_with_db, monkeypatch, tmp_path):
    path = tmp_path / "新增FAQ.csv"
    path.write_bytes(csv_bytes("新增,FAQ-NEW,,信用卡年费怎么免,常见问题,credit_card,,年消费满12笔免次年年费。,\n", "utf-8-sig"))
    result = CliRunner().invoke(app, ["ingest", str(path), "--submit", "--as", "expert"])
    assert result.exit_code == 0, result.output
    assert "submitted" in result.output and "预览 preview" in result.output
    from kb.db import make_engine
    from sqlmodel import Session
    from review_workflow.models import PackItem

    engine = make_engine(f"sqlite:///{data_dir_with_db / 'zhiku.db'}")
    with Session(engine) as s:
        assert [i.data["title"] for i in s.exec(select(PackItem)).all()] == ["信用卡年费怎么免"]
    engine.dispose()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes("删除,X,1,,,,,,\n"))
    failed = CliRunner().invoke(app, ["ingest", str(bad), "--as", "expert"])
    assert failed.exit_code == 1


def test_http_upload(api, login):
    files = {"file": ("更新包.csv", csv_bytes("新增,FAQ-H1,,如何开通手机银行,常见问题,e_banking,,下载App后注册。,\n", "gb18030"), "text/csv")}
    created = api.post("/api/v1/packs/upload", files=files, data={"title": "手机银行FAQ"}, headers=login("expert"))
    assert created.status_code == 201, created.text
    assert created.json()["items"][0]["data"]["title"] == "如何开通手机银行"
    broken = api.post("/api/v1/packs/upload", files={"file": ("x.xlsx", b"not a zip", "application/octet-stream")},
                      headers=login("expert"))
    assert broken.status_code == 422 and "x.xlsx" in json.dumps(broken.json(), ensure_ascii=False)


def test_post_packs_accepts_a_multipart_file_too(api, login):
    files = {"file": ("周更新.csv", csv_bytes("新增,FAQ-M1,,如何挂失借记卡,常见问题,debit_card,,拨打956688挂失。,\n"), "text/csv")}
    created = api.post("/api/v1/packs", files=files, headers=login("expert"))
    assert created.status_code == 201, created.text
    assert created.json()["source"] == "周更新.csv" and created.json()["state"] == "draft"
    missing = api.post("/api/v1/packs", files={"other": ("x.csv", b"", "text/csv")}, headers=login("expert"))
    assert missing.status_code == 422


def test_identical_reupload_with_a_review_date_is_unchanged(session):
    data = entry_data(id="WM-7", title="云岭稳享7号理财", valid_from="2026-01-01", summary="", script_template="",
                      tags=[], synonyms=[], review_by="2027-01-01")
    kb.create_entry(session=session, data=data, actor="expert")
    header = HEADER.strip() + ",复核日期\n"
    row = (f'修改,WM-7,1,{data["title"]},产品体系,wealth,R2,"{data["body"]}",'
           '"起购金额=1 万元\n期限=90 天",2027-01-01\n')
    preview, _ = preview_upload(session=session, filename="同样内容.csv", data=(header + row).encode())
    assert preview.ok, preview.errors
    assert [i.unchanged for i in preview.items] == [True], preview.items[0].changes
