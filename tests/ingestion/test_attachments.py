"""Attachments: media and originals found in uploads, items naming them, content-addressed storage with
dedupe, Chinese names kept, no way to choose a path on disk; the fast t2s path agrees with OpenCC."""
from __future__ import annotations

import hashlib

import pytest
from opencc import OpenCC

from ingestion.parsers import parse_upload
from kb import attachments
from kb.chinese import to_simplified
from kb.errors import NotFound, ValidationFailed
from kb.models import Actor, Attachment
from review_workflow.upload import pack_from_upload, preview_upload
from tests.ingestion.test_parsers import docx_bytes, zip_bytes

EXPERT = Actor("expert", "expert")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + "开户流程截图".encode()
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 200


def md(title: str, *, refs: list[str] | None = None, entry_id: str = "", traditional: bool = False) -> bytes:
    lines = ["---", f"title: {title}", "category: 业务流程"]
    if entry_id:
        lines.append(f"id: {entry_id}")
    if refs is not None:
        lines.append("attachments:")
        lines.extend(f"  - {r}" for r in refs)
    body = "客戶本人攜帶身份證到網點辦理開戶。" if traditional else "客户本人携带身份证到网点办理开户。"
    return ("\n".join(lines) + "\n---\n" + body + "\n").encode("utf-8")


def training_zip() -> bytes:
    return zip_bytes([
        ("条目/借记卡开户.md", md("借记卡开户流程", entry_id="ATT-1", refs=["../图片/开户截图.png", "视频/开户演示.mp4",
                                                                     "https://video.example-bank.cn/train/开户.mp4"])),
        ("条目/繁體開戶.md", md("繁體借記卡開戶", entry_id="ATT-2", refs=["開戶截圖.png"], traditional=True)),
        ("图片/开户截图.png", PNG),
        ("图片/開戶截圖.png", PNG),  # same bytes, another name: stored once
        ("视频/开户演示.mp4", MP4),
        ("视频/未引用.webm", b"\x1aE\xdf\xa3" + b"\x02" * 50),
    ])


def test_zip_media_become_attachments_that_items_name():
    pack = parse_upload("培训资料.zip", training_zip())
    assert pack.ok, pack.errors
    assert sorted(a.name for a in pack.attachments) == sorted(["开户演示.mp4", "开户截图.png", "開戶截圖.png", "未引用.webm"])
    by_title = {i.data["title"]: i.attachments for i in pack.items}
    assert by_title["借记卡开户流程"][2].startswith("https://")
    assert by_title["繁體借記卡開戶"] == ["開戶截圖.png"]
    assert {a.media_type for a in pack.attachments} == {"image/png", "video/mp4", "video/webm"}


def test_docx_entries_carry_their_original():
    data = docx_bytes([("Heading 1", "第一章 开户"), (None, "携带身份证办理。"), ("Heading 1", "第二章 销户"), (None, "本人办理。")])
    pack = parse_upload("柜面操作手冊.docx", data)
    assert pack.ok, pack.errors
    assert [a.name for a in pack.attachments] == ["柜面操作手冊.docx"]
    assert all(i.attachments == ["柜面操作手冊.docx"] for i in pack.items) and len(pack.items) == 2


@pytest.mark.parametrize("ref", ["javascript:alert(1)", "file:///etc/passwd", "ftp://example.cn/a.mp4",
                                 "../../../etc/passwd", "/etc/passwd", "不存在.png"])
def test_bad_references_are_errors_naming_the_file(session, ref):
    data = zip_bytes([("条目.md", md("开户", refs=[ref])), ("图.png", PNG)])
    preview, _ = preview_upload(session=session, filename="坏引用.zip", data=data)
    assert not preview.ok
    assert preview.errors[0]["file"].startswith("坏引用.zip/条目.md") and preview.errors[0]["field"] == "attachments"
    with pytest.raises(ValidationFailed):
        pack_from_upload(session=session, filename="坏引用.zip", data=data, actor=EXPERT)


def test_ambiguous_name_needs_a_path(session):
    data = zip_bytes([("条目.md", md("开户", refs=["图.png"])), ("甲/图.png", PNG), ("乙/图.png", PNG + b"x")])
    preview, _ = preview_upload(session=session, filename="重名.zip", data=data)
    assert "不唯一" in preview.errors[0]["message"]


def test_svg_and_html_in_a_zip_are_not_taken():
    pack = parse_upload("包.zip", zip_bytes([("条目.md", md("开户")), ("图.svg", b"<svg onload=alert(1)>"),
                                            ("页.html", b"<script>alert(1)</script>")]))
    assert not pack.ok and not pack.attachments
    assert {e.file for e in pack.errors} == {"包.zip/图.svg", "包.zip/页.html"}


def test_storage_dedupes_keeps_chinese_names_and_links_items(session, tmp_path):
    pack, preview = pack_from_upload(session=session, filename="培训资料.zip", data=training_zip(), actor=EXPERT,
                                     data_dir=tmp_path / "data")
    tmp_path = tmp_path / "data"
    assert [i.attachments for i in preview.items][0] == ["开户截图.png", "开户演示.mp4",
                                                          "https://video.example-bank.cn/train/开户.mp4"]
    listed = attachments.for_pack(session=session, pack_id=pack.id)
    names = sorted(a.filename for a in listed)
    assert names == sorted(["开户截图.png", "開戶截圖.png", "开户演示.mp4", "未引用.webm", "开户.mp4"])
    link = next(a for a in listed if a.kind == "link")
    assert link.url == "https://video.example-bank.cn/train/开户.mp4" and link.size == 0
    png_rows = [a for a in session.exec(__import__("sqlmodel").select(Attachment)).all() if a.media_type == "image/png"]
    assert len(png_rows) == 2 and len({a.sha256 for a in png_rows}) == 1
    blobs = [p for p in (tmp_path / "attachments").rglob("*") if p.is_file()]
    assert len(blobs) == 3  # png once, mp4, webm
    digest = hashlib.sha256(PNG).hexdigest()
    assert (tmp_path / "attachments" / digest[:2] / digest).read_bytes() == PNG
    assert all(p.name.isalnum() and len(p.name) == 64 for p in blobs)  # names are digests, never uploaded names


def test_a_hostile_filename_cannot_choose_the_path(session, tmp_path):
    tmp_path = tmp_path / "data"
    row = attachments.store_file(session=session, root=tmp_path, filename="../../../etc/cron.d/恶意\x00.png",
                                 content=b"evil", actor="expert")
    session.flush()
    assert row.filename == "恶意.png"
    [blob] = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert blob.is_relative_to(tmp_path / "attachments")
    for bad in ("../../etc/passwd", "x" * 100, "%2e%2e%2f"):
        with pytest.raises(NotFound):
            attachments.open_download(session=session, root=tmp_path, attachment_id=bad)
    with pytest.raises(NotFound):
        attachments.blob_path(tmp_path, "../" * 10 + "etc/passwd")


def test_only_http_links(session):
    for url in ("javascript:alert(1)", "data:text/html,<script>", "//example.cn/x", "http://"):
        with pytest.raises(ValidationFailed):
            attachments.add_link(session=session, url=url, actor="expert")
    assert attachments.add_link(session=session, url="http://培训.example.cn/视频", actor="expert").kind == "link"


def test_served_type_never_active_content():
    assert attachments.served_type("text/html; charset=utf-8") == "application/octet-stream"
    assert attachments.served_type("image/svg+xml") == "application/octet-stream"
    assert attachments.served_type("image/png") == "image/png"
    assert attachments.media_type_for("报告.PDF") == "application/pdf"
    assert attachments.media_type_for("页面.html") == "application/octet-stream"


def test_fast_simplified_conversion_agrees_with_opencc():
    opencc = OpenCC("t2s")
    texts = ["客戶本人攜帶身份證到網點辦理開戶。", "一目瞭然的乾坤", "乾隆年間的理財產品", "已经是简体的文本，没有繁体字。",
             "數字人民幣錢包", "ＬＰＲ利率下調", "", "English only 123", "著名的銀行", "于是他去了銀行",
             "客戶本人攜帶身份證到網點辦理開戶，" * 8]  # the last one is longer than the remembered short texts
    for text in texts * 2:  # the second time from the cache of short texts
        assert to_simplified(text) == opencc.convert(text), text


def test_a_replaced_drafts_files_are_swept_and_nothing_referenced_is(session, tmp_path):
    """An expert uploads a ZIP with media, then replaces the draft with a fixed file that keeps only the
    screenshot: the video's bytes are orphaned and swept once older than the grace period; the
    screenshot (still referenced) stays; young orphans, crash temp files and foreign files are handled;
    re-uploading bytes an orphan holds makes them young again, so a sweep cannot race the upload."""
    import os
    from datetime import datetime, timedelta

    from kb.models import Actor as _Actor

    data = tmp_path / "data"
    pack, _ = pack_from_upload(session=session, filename="培训资料.zip", data=training_zip(), actor=EXPERT, data_dir=data)
    session.commit()
    fixed = zip_bytes([("条目/借记卡开户.md", md("借记卡开户流程", entry_id="ATT-1", refs=["开户截图.png"])),
                       ("开户截图.png", PNG)])
    pack_from_upload(session=session, filename="培训资料-改.zip", data=fixed, actor=_Actor("expert", "expert"),
                     data_dir=data, replace_pack_id=pack.id)
    session.commit()
    store = data / "attachments"
    png, mp4 = hashlib.sha256(PNG).hexdigest(), hashlib.sha256(MP4).hexdigest()
    crash = store / "ab" / ".upload-crashed"
    crash.parent.mkdir(parents=True, exist_ok=True)
    crash.write_bytes(b"half")
    foreign = store / "ab" / "README.txt"
    foreign.write_text("not ours")
    hour_ago = (datetime.now() - timedelta(hours=2)).timestamp()
    for path in store.rglob("*"):
        if path.is_file():
            os.utime(path, (hour_ago, hour_ago))

    young = attachments.sweep_orphans(session=session, root=data, grace=timedelta(hours=3))
    assert young.files_removed == 0 and young.kept_recent == 3  # mp4, webm, the temp file
    counted = attachments.sweep_orphans(session=session, root=data, dry_run=True)
    assert (counted.files_removed, counted.referenced) == (3, 1) and (store / mp4[:2] / mp4).exists()

    attachments.write_blob(root=data, content=MP4)  # an upload of the same bytes, row not committed yet
    swept = attachments.sweep_orphans(session=session, root=data)
    assert swept.files_removed == 2 and swept.kept_recent == 1 and swept.bytes_freed == 50 + 4 + 4
    assert (store / png[:2] / png).read_bytes() == PNG and (store / mp4[:2] / mp4).exists()
    assert not crash.exists() and foreign.read_text() == "not ours"
