"""The parsing layer: every format, every hostile file, and the template round trip."""
from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path

import pytest

from ingestion.parsers import Limits, ParsedPack, parse_upload
from review_workflow.models import PackItemIn

ROOT = Path(__file__).resolve().parents[2]


def ok(pack: ParsedPack) -> ParsedPack:
    assert pack.errors == [], [e.message for e in pack.errors]
    for item in pack.items:
        PackItemIn(**{"op": item.op, **item.data})  # what the pack API will do with it
        json.dumps(item.data, ensure_ascii=False)  # stored in a JSON column
    return pack


def messages(pack: ParsedPack) -> str:
    return "\n".join(e.message for e in pack.errors)


def write(tmp_path: Path, name: str, data: bytes) -> bytes:
    """Files are generated on disk in tmp, as an expert would upload them."""
    path = tmp_path / name
    path.write_bytes(data)
    return path.read_bytes()


# ---------------------------------------------------------------- Markdown


def test_markdown_demo_entry_is_a_create_item():
    path = ROOT / "kb" / "demo" / "entries" / "KB-P001.md"
    pack = ok(parse_upload(path.name, path.read_bytes()))
    [item] = pack.items
    assert item.op == "create" and item.source == "KB-P001.md:1"
    assert item.data["entry_id"] == "KB-P001" and item.data["category"] == "product"
    assert item.data["facts"]["年费"] == {"value": "0", "unit": "元/年"}
    assert item.data["valid_from"] == "2026-01-01" and item.data["body"].startswith("## 产品定位")


def test_markdown_update_needs_id_and_base_version(tmp_path):
    good = "---\nop: 修改\nid: KB-P001\nbase_version: 2\ntitle: 薪享通借记卡\ncategory: 产品体系\n---\n正文更新。\n"
    pack = ok(parse_upload("改.md", write(tmp_path, "改.md", good.encode())))
    assert pack.items[0].op == "update"
    assert pack.items[0].data == {"entry_id": "KB-P001", "base_version": 2, "title": "薪享通借记卡",
                                  "category": "product", "body": "正文更新。"}
    retire = "---\nop: 下线\nid: KB-P009\nbase_version: 1\nreason: 产品停售\n---\n"
    assert ok(parse_upload("下线.md", retire.encode())).items[0].data == {"entry_id": "KB-P009", "base_version": 1,
                                                                         "reason": "产品停售"}
    bad = parse_upload("缺版本.md", "---\nop: update\nid: KB-P001\ntitle: x\ncategory: faq\n---\n".encode())
    assert bad.items == [] and bad.errors[0].file == "缺版本.md" and bad.errors[0].field == "base_version"
    assert "缺版本.md:1" in bad.errors[0].message and "基准版本" in bad.errors[0].message


def test_markdown_bad_front_matter_names_file_and_line():
    pack = parse_upload("坏.md", "---\ntitle: 标题\ncategory: faq: x\n---\n正文\n".encode())
    assert pack.items == [] and pack.errors[0].file == "坏.md" and pack.errors[0].line == 3
    assert pack.errors[0].message.startswith("坏.md:3 ")
    pack = parse_upload("拼错.md", "---\ntitle: 标题\ncategory: faq\ntag: [a]\n---\n".encode())
    assert "tag" in pack.errors[0].message and pack.errors[0].file == "拼错.md"
    pack = parse_upload("分类.md", "---\ntitle: 标题\ncategory: 理财\n---\n".encode())
    assert pack.errors[0].field == "category" and "未知分类" in pack.errors[0].message


# ---------------------------------------------------------------- CSV

HEADER = "操作,条目编号,基准版本,标题,分类,产品类型,风险等级,摘要,正文,关键事实,话术模板,标签,同义词,关联条目,生效时间,失效时间,复核日期"


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\r\n".join([header, *rows]) + "\r\n"


ROW_CREATE = ('新增,KB-W001,,稳盈理财30天,产品体系,wealth,r2,三十天封闭期理财。,"第一段\n第二段",'
              '"起购金额=1 万元\n业绩比较基准：2.5% 年化\n销售渠道=手机银行",您好，稳盈30天起购1万元。,'
              '"理财、封闭式，稳健",稳盈30天,"KB-P001, KB-P002",2026/7/1,2026-12-31 18:00,2027年6月30日')
ROW_RETIRE = "下线,KB-P009,3,,,,,,,,,,,,,,"


def test_csv_utf8_rows_become_items(tmp_path):
    pack = ok(parse_upload("周包.csv", write(tmp_path, "周包.csv", csv_text(ROW_CREATE, ROW_RETIRE).encode("utf-8"))))
    create, retire = pack.items
    assert create.source == "周包.csv:row 2" and retire.source == "周包.csv:row 3"
    assert create.op == "create" and create.data == {
        "entry_id": "KB-W001", "title": "稳盈理财30天", "category": "product", "product_type": "wealth",
        "risk_level": "R2", "summary": "三十天封闭期理财。", "body": "第一段\n第二段",
        "facts": {"起购金额": {"value": "1", "unit": "万元"}, "业绩比较基准": {"value": "2.5%", "unit": "年化"},
                  "销售渠道": {"value": "手机银行", "unit": None}},
        "script_template": "您好，稳盈30天起购1万元。", "tags": ["理财", "封闭式", "稳健"], "synonyms": ["稳盈30天"],
        "related": ["KB-P001", "KB-P002"], "valid_from": "2026-07-01", "valid_to": "2026-12-31T18:00:00",
        "review_by": "2027-06-30"}
    assert retire.op == "retire" and retire.data == {"entry_id": "KB-P009", "base_version": 3}


def test_csv_utf8_bom(tmp_path):
    data = write(tmp_path, "bom.csv", csv_text("新增,,,開戶須知,常见问题").encode("utf-8-sig"))
    pack = ok(parse_upload("bom.csv", data))
    assert pack.items[0].data == {"title": "開戶須知", "category": "faq"}


def test_csv_gbk_simplified_and_traditional(tmp_path):
    text = csv_text("新增,,,银行账户开户须知,常见问题,,,,客戶開立帳戶須攜帶身份證件。,,,开户、開戶")
    data = write(tmp_path, "gbk.csv", text.encode("gbk"))
    pack = ok(parse_upload("gbk.csv", data))
    item = pack.items[0].data
    assert item["body"] == "客戶開立帳戶須攜帶身份證件。" and item["tags"] == ["开户", "開戶"]


def test_csv_gb18030_characters_outside_gbk(tmp_path):
    rare = "䶮𠀾"  # CJK extension A / B: not in GBK, encodable in GB18030
    with pytest.raises(UnicodeEncodeError):
        rare.encode("gbk")
    text = csv_text(f"新增,,,生僻字姓名客户开户,业务流程,,,,客户姓名含生僻字{rare}時，以證件為準。")
    pack = ok(parse_upload("gb18030.csv", write(tmp_path, "gb18030.csv", text.encode("gb18030"))))
    assert pack.items[0].data["body"] == f"客户姓名含生僻字{rare}時，以證件為準。"


def test_csv_undecodable_is_an_error_naming_the_file():
    pack = parse_upload("乱码.csv", bytes(range(128, 256)) * 4)
    assert pack.items == [] and pack.errors[0].file == "乱码.csv" and "编码" in pack.errors[0].message
    pack = parse_upload("utf16.csv", csv_text("新增,,,标题,faq").encode("utf-16"))
    assert pack.items == [] and pack.errors[0].file == "utf16.csv"


def test_csv_unknown_and_missing_headers():
    pack = parse_upload("表头.csv", csv_text("新增,标题,faq,x", header="操作,标题,分类,备注").encode())
    assert pack.items == [] and len(pack.errors) == 1 and "备注" in pack.errors[0].message
    assert pack.errors[0].row == 1
    pack = parse_upload("无操作.csv", csv_text("标题,faq", header="标题,分类").encode())
    assert pack.items == [] and "操作" in pack.errors[0].message
    pack = parse_upload("无版本.csv", csv_text("修改,KB-P001,标题,faq", header="操作,条目编号,标题,分类").encode())
    assert pack.items == [] and "基准版本" in pack.errors[0].message and pack.errors[0].row == 2


def test_csv_bad_rows_are_reported_with_row_and_field():
    text = csv_text("新增,,,好的条目,faq",
                    "新增,,,分类错误,理财",
                    "修改,KB-P001,,缺基准版本,faq",
                    "",
                    "新增,,,事实格式错,faq,,,,,没有等号",
                    "删除,,,操作错,faq",
                    "新增,,,风险错,faq,,R9")
    pack = parse_upload("行错误.csv", text.encode())
    assert [i.data["title"] for i in pack.items] == ["好的条目"]
    located = [(e.row, e.field) for e in pack.errors]
    assert located == [(3, "category"), (4, "base_version"), (6, "facts"), (7, "op"), (8, "risk_level")]
    assert all(e.file == "行错误.csv" and e.message.startswith(f"行错误.csv:row {e.row}") for e in pack.errors)


# ---------------------------------------------------------------- XLSX


def xlsx_bytes(rows: list[list[object]], *, title: str = "更新条目") -> bytes:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_template_round_trip(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    from datetime import date

    from ingestion.parsers import write_template
    from ingestion.parsers.tabular import TEMPLATE_HEADERS

    path = write_template(tmp_path / "模板.xlsx")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["更新条目", "填写说明"]
    sheet = book["更新条目"]
    assert [c.value for c in sheet[1]] == TEMPLATE_HEADERS
    example = ok(parse_upload("模板.xlsx", path.read_bytes()))
    assert len(example.items) == 1 and example.items[0].data["title"] == "薪享通借记卡年费说明"

    rows = [
        {"操作": "新增", "条目编号": "KB-W101", "标题": "稳盈理财30天", "分类": "产品体系", "产品类型": "wealth",
         "风险等级": "R2", "摘要": "三十天封闭期。", "正文": "第一段\n第二段", "关键事实": "起购金额=1 万元\n期限：30 天",
         "话术模板": "您好，起购1万元。", "标签": "理财、封闭式", "同义词": "稳盈30天，稳盈", "关联条目": "KB-P001\nKB-P002",
         "生效时间": date(2026, 7, 1), "复核日期": date(2027, 6, 30), "产品代码": "WM-30", "归属部门": "财富管理部"},
        {"操作": "修改", "条目编号": "KB-P001", "基准版本": 4, "标题": "云岭薪享通借记卡", "分类": "产品体系",
         "正文": "年费调整说明。", "关键事实": "年费=0 元/年", "失效时间": "2027-01-01 00:00"},
    ]
    for number, row in enumerate(rows, start=2):
        for column, header in enumerate(TEMPLATE_HEADERS, start=1):
            sheet.cell(row=number, column=column, value=row.get(header))
    filled = tmp_path / "填好.xlsx"
    book.save(filled)
    pack = ok(parse_upload("填好.xlsx", filled.read_bytes()))
    assert [i.source for i in pack.items] == ["填好.xlsx!更新条目:row 2", "填好.xlsx!更新条目:row 3"]
    assert [(i.op, i.data) for i in pack.items] == [
        ("create", {"entry_id": "KB-W101", "title": "稳盈理财30天", "category": "product", "product_type": "wealth",
                    "risk_level": "R2", "summary": "三十天封闭期。", "body": "第一段\n第二段",
                    "facts": {"起购金额": {"value": "1", "unit": "万元"}, "期限": {"value": "30", "unit": "天"}},
                    "script_template": "您好，起购1万元。", "tags": ["理财", "封闭式"], "synonyms": ["稳盈30天", "稳盈"],
                    "related": ["KB-P001", "KB-P002"], "valid_from": "2026-07-01", "review_by": "2027-06-30",
                    "product_code": "WM-30", "owner_department": "财富管理部"}),
        ("update", {"entry_id": "KB-P001", "base_version": 4, "title": "云岭薪享通借记卡", "category": "product",
                    "body": "年费调整说明。", "facts": {"年费": {"value": "0", "unit": "元/年"}},
                    "valid_to": "2027-01-01T00:00:00"}),
    ]


def test_xlsx_bad_rows_name_sheet_and_row():
    data = xlsx_bytes([["操作", "标题", "分类"], ["新增", "好", "faq"], [None, None, None], ["新增", "", "faq"]],
                      title="第一周")
    pack = parse_upload("周包.xlsx", data)
    assert len(pack.items) == 1
    [problem] = pack.errors
    assert (problem.file, problem.sheet, problem.row, problem.field) == ("周包.xlsx", "第一周", 4, "title")
    assert problem.message.startswith("周包.xlsx!第一周:row 4 [标题]")


def test_xlsx_unknown_header():
    pack = parse_upload("表头.xlsx", xlsx_bytes([["操作", "标题", "分类", "备注"], ["新增", "a", "faq", "x"]]))
    assert pack.items == [] and "备注" in pack.errors[0].message and pack.errors[0].sheet == "更新条目"


def test_xlsm_and_fake_xlsx_are_refused():
    pack = parse_upload("宏.xlsm", b"PK\x03\x04anything")
    assert pack.items == [] and pack.errors[0].file == "宏.xlsm" and "宏" in pack.errors[0].message
    pack = parse_upload("假的.xlsx", b"this is not a spreadsheet at all")
    assert pack.items == [] and pack.errors[0].file == "假的.xlsx" and "ZIP" in pack.errors[0].message
    pack = parse_upload("加密.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    assert pack.items == [] and "加密" in pack.errors[0].message
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:  # a macro workbook renamed to .xlsx
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/vbaProject.bin", b"\x00macro")
    pack = parse_upload("改名.xlsx", buffer.getvalue())
    assert pack.items == [] and "宏" in pack.errors[0].message and pack.errors[0].file == "改名.xlsx"


# ---------------------------------------------------------------- DOCX (built by hand: python-docx is not installed)

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_bytes(paragraphs: list[tuple[str | None, str]], *, table: list[list[str]] | None = None,
               document_xml: str | None = None) -> bytes:
    """paragraphs: (style id or None, text). Styles use Word's Chinese-locale ids ("1", "2") named heading N."""
    def para(style: str | None, text: str) -> str:
        ppr = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
        return f"<w:p>{ppr}<w:r><w:t xml:space=\"preserve\">{text}</w:t></w:r></w:p>"

    body = "".join(para(s, t) for s, t in paragraphs)
    if table:
        body += "<w:tbl>" + "".join(
            "<w:tr>" + "".join(f"<w:tc>{para(None, cell)}</w:tc>" for cell in row) + "</w:tr>" for row in table
        ) + "</w:tbl>"
    document = document_xml or f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{W_NS}"><w:body>{body}</w:body></w:document>'
    styles = (f'<?xml version="1.0" encoding="UTF-8"?><w:styles xmlns:w="{W_NS}">'
              '<w:style w:type="paragraph" w:styleId="a3"><w:name w:val="Title"/></w:style>'
              '<w:style w:type="paragraph" w:styleId="1"><w:name w:val="heading 1"/></w:style>'
              '<w:style w:type="paragraph" w:styleId="2"><w:name w:val="heading 2"/></w:style></w:styles>')
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        zf.writestr("word/document.xml", document)
        zf.writestr("word/styles.xml", styles)
    return buffer.getvalue()


def test_docx_split_by_headings(tmp_path):
    data = write(tmp_path, "挂失手册.docx", docx_bytes([
        ("a3", "借记卡挂失操作手册"),
        (None, "本手册适用于全行客服坐席。"),
        ("1", "一、口头挂失"),
        (None, "客户可拨打客服热线办理口头挂失。"),
        ("2", "有效期"),
        (None, "口头挂失有效期为五天。"),
        ("1", "二、正式挂失"),
        (None, "客户须持本人有效身份证件到网点办理。"),
    ], table=[["证件", "说明"], ["身份证", "须在有效期内"]]))
    pack = ok(parse_upload("挂失手册.docx", data))
    assert [(i.data["title"], i.source) for i in pack.items] == [
        ("借记卡挂失操作手册", "挂失手册.docx:section 0"),
        ("一、口头挂失", "挂失手册.docx:section 1"),
        ("二、正式挂失", "挂失手册.docx:section 2")]
    assert all(i.op == "create" and i.data["category"] == "process" for i in pack.items)
    assert pack.items[1].data["body"] == "客户可拨打客服热线办理口头挂失。\n\n## 有效期\n\n口头挂失有效期为五天。"
    assert pack.items[2].data["body"] == "客户须持本人有效身份证件到网点办理。\n证件 | 说明\n身份证 | 须在有效期内"
    [attachment] = pack.attachments
    assert attachment.name == "挂失手册.docx" and attachment.content == data and attachment.media_type.endswith("document")


def test_docx_without_headings_is_one_entry():
    pack = ok(parse_upload("反洗钱须知.docx", docx_bytes([(None, "第一段。"), (None, "第二段。")])))
    assert [i.data for i in pack.items] == [{"title": "反洗钱须知", "body": "第一段。\n第二段。", "category": "process"}]
    assert len(pack.attachments) == 1


def test_docx_hostile_or_broken():
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
              f'<w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t>&lol2;</w:t></w:r></w:p></w:body></w:document>')
    pack = parse_upload("实体.docx", docx_bytes([], document_xml=laughs))
    assert pack.items == [] and pack.errors[0].file == "实体.docx" and pack.attachments == []
    pack = parse_upload("假的.docx", b"not a zip")
    assert pack.items == [] and pack.errors[0].file == "假的.docx"
    pack = parse_upload("空.docx", docx_bytes([]))
    assert pack.items == [] and "未提取到文字" in pack.errors[0].message
    assert "宏" in parse_upload("宏.docm", b"PK").errors[0].message


# ---------------------------------------------------------------- PDF (hand-written, CJK text via a ToUnicode CMap)


def cjk_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A minimal valid PDF whose text extracts as the given Chinese lines (no font program is embedded)."""
    chars = sorted({c for lines in pages for line in lines for c in line})
    code = {c: i + 1 for i, c in enumerate(chars)}
    first_page = 10
    objs: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: ("<< /Type /Pages /Kids [" + " ".join(f"{first_page + 2 * i} 0 R" for i in range(len(pages)))
            + f"] /Count {len(pages)} >>").encode(),
        5: b"<< /Type /Font /Subtype /Type0 /BaseFont /ZhikuTest /Encoding /Identity-H /DescendantFonts [6 0 R] /ToUnicode 7 0 R >>",
        6: (b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /ZhikuTest /CIDSystemInfo << /Registry (Adobe) "
            b"/Ordering (Identity) /Supplement 0 >> /FontDescriptor 8 0 R /DW 1000 >>"),
        8: (b"<< /Type /FontDescriptor /FontName /ZhikuTest /Flags 4 /FontBBox [0 -200 1000 900] /ItalicAngle 0 "
            b"/Ascent 880 /Descent -120 /CapHeight 700 /StemV 80 >>"),
    }
    entries = [f"<{code[c]:04X}> <{c.encode('utf-16-be').hex().upper()}>" for c in chars]
    blocks = [f"{len(entries[i:i + 100])} beginbfchar\n" + "\n".join(entries[i:i + 100]) + "\nendbfchar"
              for i in range(0, len(entries), 100)]
    cmap = ("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n/CIDSystemInfo << /Registry (Adobe) "
            "/Ordering (UCS) /Supplement 0 >> def\n/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n" + "\n".join(blocks)
            + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend").encode()
    objs[7] = b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"\nendstream"
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 780 Td"]
        ops += ["<" + "".join(f"{code[c]:04X}" for c in line) + "> Tj T*" for line in lines]
        stream = "\n".join(ops + ["ET"]).encode()
        objs[first_page + 2 * i] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font "
                                    f"<< /F1 5 0 R >> >> /Contents {first_page + 2 * i + 1} 0 R >>").encode()
        objs[first_page + 2 * i + 1] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    if title:
        objs[9] = b"<< /Title <FEFF" + title.encode("utf-16-be").hex().upper().encode() + b"> >>"
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n"
    size = max(objs) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for num in range(1, size):
        out += (b"%010d 00000 n \n" % offsets[num]) if num in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R" % size + (b" /Info 9 0 R" if title else b"") + b" >>\n"
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def test_pdf_split_by_chinese_headings(tmp_path):
    data = write(tmp_path, "信用卡手册.pdf", cjk_pdf([
        ["信用卡业务手册", "一、开卡流程", "客户须携带身份证。", "1. 核实身份", "二、挂失流程", "- 1 -"],
        ["拨打95588办理挂失。", "第 2 页"]], title="信用卡业务手册"))
    pack = ok(parse_upload("信用卡手册.pdf", data))
    assert [(i.data["title"], i.data["body"], i.source) for i in pack.items] == [
        ("信用卡业务手册", "信用卡业务手册", "信用卡手册.pdf:section 0"),
        ("一、开卡流程", "客户须携带身份证。\n1. 核实身份", "信用卡手册.pdf:page 1"),
        ("二、挂失流程", "拨打95588办理挂失。", "信用卡手册.pdf:page 1")]
    assert pack.attachments[0].name == "信用卡手册.pdf" and pack.attachments[0].media_type == "application/pdf"


def test_pdf_articles_and_no_headings():
    pack = ok(parse_upload("办法.pdf", cjk_pdf([["第一条 为规范个人账户管理，制定本办法。", "第二条 本办法适用于全行。"]])))
    assert [i.data["title"] for i in pack.items] == ["第一条 为规范个人账户管理，制定本办法。", "第二条 本办法适用于全行。"]
    pack = ok(parse_upload("温馨提示.pdf", cjk_pdf([["请勿向他人透露验证码。", "谨防电信诈骗。"]])))
    assert [i.data for i in pack.items] == [
        {"title": "温馨提示", "body": "请勿向他人透露验证码。\n谨防电信诈骗。", "category": "process"}]


def test_pdf_encrypted_and_garbage_are_errors():
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    pack = parse_upload("加密.pdf", buffer.getvalue())
    assert pack.items == [] and pack.attachments == []
    assert pack.errors[0].file == "加密.pdf" and "加密" in pack.errors[0].message
    pack = parse_upload("坏.pdf", b"%PDF-1.7\n garbage")
    assert pack.items == [] and pack.errors[0].file == "坏.pdf"
    assert parse_upload("图片.pdf", b"\x89PNG....").errors[0].file == "图片.pdf"


# ---------------------------------------------------------------- ZIP

GOOD_MD = "---\ntitle: 开户须知\ncategory: 常见问题\n---\n请携带身份证。\n".encode()


def zip_bytes(members: list[tuple[zipfile.ZipInfo | str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for info, content in members:
            zf.writestr(info, content)
    return buffer.getvalue()


def test_zip_of_every_format(tmp_path):
    inner = zip_bytes([("流程/挂失.md", "---\ntitle: 挂失\ncategory: process\n---\n正文\n".encode())])
    data = write(tmp_path, "周包.zip", zip_bytes([
        ("产品/开户.md", GOOD_MD),
        ("表格/周包.csv", csv_text("新增,,,销户流程,业务流程").encode("gbk")),
        ("文档/手册.docx", docx_bytes([("1", "一、开卡"), (None, "带证件。")])),
        ("文档/手册.pdf", cjk_pdf([["提示。"]])),
        ("下一层.zip", inner),
        ("__MACOSX/产品/._开户.md", b"\x00\x05junk"),
        ("产品/", b""),
    ]))
    pack = ok(parse_upload("周包.zip", data))
    assert [i.source for i in pack.items] == ["周包.zip/产品/开户.md:1", "周包.zip/表格/周包.csv:row 2",
                                              "周包.zip/文档/手册.docx:section 1", "周包.zip/文档/手册.pdf:section 0",
                                              "周包.zip/下一层.zip/流程/挂失.md:1"]
    assert [a.name for a in pack.attachments] == ["手册.docx", "手册.pdf"]


def assert_refused(pack: ParsedPack, member: str) -> None:
    assert pack.items == [] and pack.attachments == []
    assert pack.errors and any(member in e.message and member in e.file for e in pack.errors), messages(pack)


def test_zip_bomb_member_is_refused():
    data = zip_bytes([("开户.md", GOOD_MD), ("炸弹.md", b"0" * (5 * 1024 * 1024))])
    pack = parse_upload("炸弹包.zip", data)
    assert_refused(pack, "炸弹.md")
    assert "压缩炸弹" in messages(pack) and "zip bomb" in messages(pack)


def test_zip_path_traversal_absolute_and_backslash():
    assert_refused(parse_upload("穿越.zip", zip_bytes([("开户.md", GOOD_MD), ("../../etc/evil.md", GOOD_MD)])),
                   "../../etc/evil.md")
    assert_refused(parse_upload("绝对.zip", zip_bytes([("开户.md", GOOD_MD), ("/etc/evil.md", GOOD_MD)])),
                   "/etc/evil.md")
    info = zipfile.ZipInfo("a.md")
    info.filename = "..\\..\\evil.md"  # Windows separators, set after ZipInfo normalised the name
    assert_refused(parse_upload("反斜杠.zip", zip_bytes([(info, GOOD_MD)])), "evil.md")


def test_zip_symlink_member_is_refused():
    link = zipfile.ZipInfo("链接.md")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    pack = parse_upload("链接包.zip", zip_bytes([("开户.md", GOOD_MD), (link, b"/etc/passwd")]))
    assert_refused(pack, "链接.md")
    assert "符号链接" in messages(pack)


def test_zip_encrypted_member_is_refused():
    data = bytearray(zip_bytes([("开户.md", GOOD_MD), ("secret.md", GOOD_MD)]))
    central = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)  # second member's central record
    data[central + 8] |= 0x01  # general purpose flag: encrypted
    local = data.index(b"PK\x03\x04", 4)
    data[local + 6] |= 0x01
    pack = parse_upload("加密包.zip", bytes(data))
    assert_refused(pack, "secret.md")
    assert "加密" in messages(pack)


def test_zip_nesting_deeper_than_the_limit():
    level3 = zip_bytes([("深.md", GOOD_MD)])
    level2 = zip_bytes([("第三层.zip", level3)])
    pack = parse_upload("第一层.zip", zip_bytes([("开户.md", GOOD_MD), ("第二层.zip", level2)]))
    assert_refused(pack, "第三层.zip")
    assert "嵌套" in messages(pack)
    allowed = parse_upload("两层.zip", zip_bytes([("第二层.zip", level3)]))
    assert ok(allowed).items[0].source == "两层.zip/第二层.zip/深.md:1"


def test_zip_too_many_members_and_total_size():
    many = zip_bytes([(f"条目{i}.md", GOOD_MD) for i in range(6)])
    pack = parse_upload("太多.zip", many, limits=Limits(max_files=5))
    assert pack.items == [] and pack.errors[0].file == "太多.zip" and "too many" in pack.errors[0].message
    assert len(ok(parse_upload("正好.zip", many, limits=Limits(max_files=6))).items) == 6
    big = zip_bytes([("一.md", GOOD_MD + b"x" * 3000), ("二.md", GOOD_MD + b"y" * 3000)], zipfile.ZIP_STORED)
    pack = parse_upload("超量.zip", big, limits=Limits(max_total_uncompressed=4000))
    assert pack.items == [] and pack.errors[0].file == "超量.zip" and "4000" in pack.errors[0].message


def test_zip_member_larger_than_its_header_says():
    data = bytearray(zip_bytes([("开户.md", GOOD_MD), ("说谎.md", GOOD_MD * 10)]))
    central = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)
    data[central + 24:central + 28] = (10).to_bytes(4, "little")  # declared uncompressed size: 10 bytes
    pack = parse_upload("说谎.zip", bytes(data))
    assert_refused(pack, "说谎.md")


def test_zip_garbage_and_unknown_members():
    pack = parse_upload("假的.zip", b"PK\x03\x04 truncated")
    assert pack.items == [] and pack.errors[0].file == "假的.zip"
    pack = parse_upload("杂项.zip", zip_bytes([("开户.md", GOOD_MD), ("说明.txt", b"hello")]))
    assert [e.file for e in pack.errors] == ["杂项.zip/说明.txt"] and "不支持" in pack.errors[0].message
    assert len(pack.items) == 1  # a content error is not a safety refusal; the caller still refuses to save


def test_oversized_upload_and_unknown_extension():
    pack = parse_upload("大文件.csv", b"x" * 101, limits=Limits(max_upload_bytes=100))
    assert pack.items == [] and pack.errors[0].file == "大文件.csv" and "100" in pack.errors[0].message
    pack = parse_upload("照片.jpg", b"\xff\xd8\xff")
    assert pack.items == [] and pack.errors[0].file == "照片.jpg" and ".jpg" in pack.errors[0].message
    assert parse_upload("../../etc/passwd.md", GOOD_MD).items[0].source == "passwd.md:1"
