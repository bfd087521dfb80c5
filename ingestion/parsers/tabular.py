"""Spreadsheet update packs (XLSX / CSV) in the documented template: one row per pack item.

Headers (row 1, exact Chinese names; a trailing `*` is ignored):
  操作 (新增/修改/下线 or create/update/retire), 条目编号, 基准版本, 标题, 分类, 产品类型, 风险等级, 摘要, 正文,
  关键事实, 话术模板, 标签, 同义词, 关联条目, 生效时间, 失效时间, 复核日期, and optionally 产品代码, 归属部门, 下线原因, 附件.
Required headers: 操作 always; 标题 and 分类 when a row is 新增/修改; 条目编号 and 基准版本 when a row is 修改/下线.
Cells:
  关键事实  one fact per line, `名称=值 单位` or `名称：值 单位` (also `:`); the value and the unit are split on the
            first space after the separator: `起购金额=1 万元` → {value: "1", unit: "万元"}; `起购金额：1万元` →
            {value: "1万元", unit: null}.
  标签 / 同义词 / 关联条目  separated by 、 ， , or new lines.
  附件      files in the same ZIP (path or name) or http(s) links, one per line (or separated by 、).
  生效时间 / 失效时间 / 复核日期  date cells, or text `2026-07-01`, `2026/7/1`, `2026年7月1日`, optionally `09:00`.
Empty rows are skipped; row numbers are 1-based with the header as row 1 (a CSV row is a record, so a quoted
cell spanning several lines still counts as one row).
"""
from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from ingestion.parsers.archive import Budget, check_members, open_zip
from ingestion.parsers.common import build_item, decode_text, error, where
from ingestion.parsers.types import ParsedItem, ParseError

HEADERS: dict[str, str] = {
    "操作": "op", "条目编号": "entry_id", "基准版本": "base_version", "标题": "title", "分类": "category",
    "产品类型": "product_type", "风险等级": "risk_level", "摘要": "summary", "正文": "body", "关键事实": "facts",
    "话术模板": "script_template", "标签": "tags", "同义词": "synonyms", "关联条目": "related",
    "生效时间": "valid_from", "失效时间": "valid_to", "复核日期": "review_by",
    "产品代码": "product_code", "归属部门": "owner_department", "下线原因": "reason", "附件": "attachments",
}
TEMPLATE_HEADERS = list(HEADERS)
LIST_FIELDS = ("tags", "synonyms", "related")
DATA_SHEET = "更新条目"
GUIDE_SHEET = "填写说明"
LIST_SPLIT = re.compile(r"[、，,\n\r]+")
FACT_SPLIT = re.compile(r"[=＝：:]")


# ---------------------------------------------------------------- cells


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        if value.time() == time.min:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).replace("\r\n", "\n").strip()


def parse_facts(text: str) -> tuple[dict[str, dict[str, str | None]], str | None]:
    facts: dict[str, dict[str, str | None]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        match = FACT_SPLIT.search(line)
        if not match:
            return {}, f"第 {number} 行缺少 = 或 ： line {number} needs `名称=值 单位`: {line!r}"
        key, rest = line[: match.start()].strip(), line[match.end():].strip()
        if not key or not rest:
            return {}, f"第 {number} 行名称或值为空 line {number} has an empty name or value: {line!r}"
        if key in facts:
            return {}, f"关键事实重复 duplicate fact {key!r}"
        parts = re.split(r"[ \t\u3000]+", rest, maxsplit=1)
        facts[key] = {"value": parts[0], "unit": parts[1].strip() if len(parts) > 1 and parts[1].strip() else None}
    return facts, None


def split_list(text: str) -> list[str]:
    return [part.strip() for part in LIST_SPLIT.split(text) if part.strip()]


# ---------------------------------------------------------------- rows


def parse_rows(file: str, rows: Any, *, sheet: str | None,
               empty_ok: bool = False) -> tuple[list[ParsedItem], list[ParseError]]:
    """rows: an iterator of row tuples, the first non-blank one being the header row."""
    items: list[ParsedItem] = []
    errors: list[ParseError] = []
    header: list[str] | None = None
    columns: list[str | None] = []
    for number, values in enumerate(rows, start=1):
        texts = [cell_text(v) for v in values]
        if header is None:
            if not any(texts):
                if number > 50:
                    break
                continue  # leading blank rows before the header are tolerated
            header = [t.rstrip("*＊").strip() for t in texts]
            header_row = number
            unknown = [h for h in header if h and h not in HEADERS]
            if unknown:
                errors.append(error(file, "未知列名 unknown headers: " + "、".join(unknown) +
                                    "；可用列名 allowed: " + "、".join(TEMPLATE_HEADERS), sheet=sheet, row=number))
            seen: set[str] = set()
            for h in header:
                if h and h in seen:
                    errors.append(error(file, f"列名重复 duplicate header {h}", sheet=sheet, row=number))
                seen.add(h)
            if "操作" not in header:
                errors.append(error(file, "缺少必需列 missing required header: 操作", sheet=sheet, row=number))
            if errors:
                return [], errors
            columns = [HEADERS.get(h) if h else None for h in header]
            continue
        if not any(texts):
            continue
        fields: dict[str, str] = {}
        for column, text in zip(columns, texts):
            if column is None:
                if text:
                    errors.append(error(file, "没有列名的列里有内容 a cell under no header has content",
                                        sheet=sheet, row=number))
                continue
            fields[column] = text
        item, problems = row_item(file, fields, header, sheet=sheet, row=number)
        errors.extend(problems)
        if item:
            items.append(item)
    if header is None:
        if empty_ok:
            return [], []
        errors.append(error(file, "表格为空，缺少表头 no header row found", sheet=sheet))
    elif not items and not errors:
        errors.append(error(file, "没有数据行 no data rows", sheet=sheet))
    return items, errors


def row_item(file: str, fields: dict[str, str], header: list[str], *, sheet: str | None,
             row: int) -> tuple[ParsedItem | None, list[ParseError]]:
    from ingestion.parsers.common import parse_op

    op = parse_op(fields.get("op"))
    needed = {"create": ("标题", "分类"), "update": ("条目编号", "基准版本", "标题", "分类"),
              "retire": ("条目编号", "基准版本")}.get(op or "", ())
    missing = [h for h in needed if h not in header]
    if missing:
        return None, [error(file, f"{fields.get('op')} 行需要的列不存在 missing required header(s) for this row: " +
                            "、".join(missing), sheet=sheet, row=row)]
    if not fields.get("op"):
        return None, [error(file, "操作为空 op is empty (新增/修改/下线)", sheet=sheet, row=row, field="op")]
    content: dict[str, Any] = {}
    errors: list[ParseError] = []
    for key, text in fields.items():
        if key in ("op", "entry_id", "base_version") or not text:
            continue
        if key == "attachments":
            continue  # taken below: references, not content
        if key == "facts":
            facts, problem = parse_facts(text)
            if problem:
                errors.append(error(file, problem, sheet=sheet, row=row, field="facts"))
            content[key] = facts
        elif key in LIST_FIELDS:
            content[key] = split_list(text)
        else:
            content[key] = text
    if errors:
        return None, errors
    source = where(file, sheet=sheet, row=row)
    item, problems = build_item(fields.get("op"), content, file=file, source=source, entry_id=fields.get("entry_id"),
                                base_version=fields.get("base_version"), sheet=sheet, row=row)
    if item is not None and fields.get("attachments"):
        item.attachments.extend(part.strip() for part in re.split(r"[、\n\r]+", fields["attachments"]) if part.strip())
    return item, problems


# ---------------------------------------------------------------- CSV


def parse_csv(file: str, data: bytes) -> tuple[list[ParsedItem], list[ParseError]]:
    if b"\x00" in data:
        return [], [error(file, "CSV 含二进制内容（NUL 字节），请以 UTF-8 或 GBK 保存 "
                                "CSV contains NUL bytes; save it as UTF-8 or GBK")]
    text, _ = decode_text(data)
    if text is None:
        return [], [error(file, "无法识别编码，请以 UTF-8 或 GBK/GB18030 保存 "
                                "cannot decode the file; save it as UTF-8 or GBK/GB18030")]
    try:
        sample = text[:4096]
        dialect: Any = csv.excel_tab if sample.count("\t") > sample.count(",") else csv.excel
        rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
    except csv.Error as exc:
        return [], [error(file, f"CSV 格式错误 malformed CSV: {exc}")]
    return parse_rows(file, iter(rows), sheet=None)


# ---------------------------------------------------------------- XLSX


def parse_xlsx(file: str, data: bytes, budget: Budget) -> tuple[list[ParsedItem], list[ParseError]]:
    zf, problem = open_zip(file, data, budget.limits.max_files)
    if zf is None:
        return [], [problem] if problem else []
    with zf:
        names = [i.filename for i in zf.infolist()]
        members, errors = check_members(file, zf, budget, depth=1, nested_ext=())
    if errors:
        return [], errors
    # openpyxl reads the parts itself; zipfile never yields more than a part's declared size, so the declared
    # total (already checked against the budget) is what this workbook may cost.
    budget.uncompressed_left -= sum(info.file_size for info, _ in members)
    if "[Content_Types].xml" not in names or not any(n.startswith("xl/") for n in names):
        return [], [error(file, "不是 Excel 工作簿 not an Excel .xlsx workbook")]
    if any(n.lower().endswith("vbaproject.bin") for n in names):
        return [], [error(file, "工作簿包含宏，请另存为不含宏的 .xlsx workbook contains macros; save it as a plain .xlsx")]
    try:
        import openpyxl
    except ImportError:
        return [], [error(file, "服务器未安装 openpyxl，暂不能读取 .xlsx，请改用 CSV "
                                "openpyxl is not installed on the server; upload CSV instead")]
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception as exc:  # openpyxl raises many kinds on damaged files
        return [], [error(file, f"无法读取工作簿 cannot read the workbook ({type(exc).__name__}: {exc})")]
    items: list[ParsedItem] = []
    errors = []
    try:
        sheets = [ws for ws in book.worksheets if not ws.title.startswith(("填写说明", "说明"))]
        used = 0
        for ws in sheets:
            try:
                got, problems = parse_rows(file, ws.iter_rows(values_only=True), sheet=ws.title, empty_ok=True)
            except Exception as exc:
                got, problems = [], [error(file, f"工作表无法读取 sheet cannot be read ({type(exc).__name__}: {exc})",
                                           sheet=ws.title)]
            used += bool(got or problems)
            items.extend(got)
            errors.extend(problems)
        if not used:
            errors.append(error(file, "工作簿没有数据工作表 the workbook has no data sheet"))
    finally:
        book.close()
    return items, errors


# ---------------------------------------------------------------- template

GUIDE = [
    ("操作", "必填", "新增 / 修改 / 下线（或 create / update / retire）", "新增"),
    ("条目编号", "修改、下线必填", "已有条目的编号；新增时可留空（系统生成）或指定新编号", "KB-P101"),
    ("基准版本", "修改、下线必填", "修改所依据的版本号（正整数），防止覆盖他人修改", "3"),
    ("标题", "新增、修改必填", "不超过 200 字", "薪享通借记卡年费说明"),
    ("分类", "新增、修改必填", "产品体系 / 业务流程 / 合规要求 / 常见问题（或 product / process / compliance / faq）", "产品体系"),
    ("产品类型", "选填", "如 debit_card、wealth", "debit_card"),
    ("风险等级", "选填", "R1–R5，非理财类可留空", "R2"),
    ("摘要", "选填", "一两句话概括", ""),
    ("正文", "选填", "可多行，支持 Markdown", ""),
    ("关键事实", "选填", "每行一条：名称=值 单位 或 名称：值 单位；值与单位以第一个空格分隔，如 起购金额=1 万元", "年费=0 元/年"),
    ("话术模板", "选填", "坐席可直接使用的话术", ""),
    ("标签", "选填", "以 、 ， , 或换行分隔", "借记卡、年费"),
    ("同义词", "选填", "以 、 ， , 或换行分隔", "工资卡、代发卡"),
    ("关联条目", "选填", "条目编号，以 、 ， , 或换行分隔", "KB-P001"),
    ("生效时间", "选填", "日期或日期时间，如 2026-07-01 或 2026-07-01 09:00（北京时间）；留空表示发布即生效", "2026-07-01"),
    ("失效时间", "选填", "须晚于生效时间", ""),
    ("复核日期", "选填", "到期提醒复核", "2027-06-30"),
    ("产品代码", "选填", "仅新增时使用", "DC-XXT"),
    ("归属部门", "选填", "仅新增时使用", "个人金融部"),
    ("下线原因", "选填", "仅下线时使用", ""),
    ("附件", "选填", "同一 ZIP 包内的文件（图片、培训视频、文档）路径，或 http/https 链接；每行一个", "视频/开卡演示.mp4"),
]
EXAMPLE = {
    "操作": "新增", "标题": "薪享通借记卡年费说明", "分类": "产品体系", "产品类型": "debit_card", "风险等级": "",
    "摘要": "薪享通借记卡免年费、免小额账户管理费。", "正文": "薪享通借记卡为代发工资客户提供，免收年费和小额账户管理费。",
    "关键事实": "年费=0 元/年\n小额账户管理费=免收", "话术模板": "您好，薪享通借记卡免年费，也不收小额账户管理费。",
    "标签": "借记卡、年费", "同义词": "工资卡、代发卡", "关联条目": "KB-P001", "生效时间": "2026-07-01",
    "复核日期": "2027-06-30", "产品代码": "DC-XXT", "归属部门": "个人金融部",
}


def write_template(path: Path) -> Path:
    """Write the XLSX template: the 更新条目 sheet (headers + one example row) and a 填写说明 sheet."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    sheet = book.active
    sheet.title = DATA_SHEET
    sheet.append(TEMPLATE_HEADERS)
    sheet.append([EXAMPLE.get(h, "") for h in TEMPLATE_HEADERS])
    for column, header in enumerate(TEMPLATE_HEADERS, start=1):
        cell = sheet.cell(row=1, column=column)
        cell.font = Font(bold=True)
        letter = cell.column_letter
        sheet.column_dimensions[letter].width = 40 if header in ("正文", "关键事实", "话术模板", "摘要") else 14
        sheet.cell(row=2, column=column).alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = "A2"
    for header, options in (("操作", "新增,修改,下线"), ("分类", "产品体系,业务流程,合规要求,常见问题"),
                            ("风险等级", "R1,R2,R3,R4,R5")):
        letter = sheet.cell(row=1, column=TEMPLATE_HEADERS.index(header) + 1).column_letter
        check = DataValidation(type="list", formula1=f'"{options}"', allow_blank=True)
        check.add(f"{letter}2:{letter}1000")
        sheet.add_data_validation(check)
    guide = book.create_sheet(GUIDE_SHEET)
    guide.append(["列名", "是否必填", "填写说明", "示例"])
    for row in GUIDE:
        guide.append(list(row))
    guide.append([])
    guide.append(["说明", "", "第 1 行为表头，请勿修改列名；每行一个条目；空行会被忽略。也可另存为 CSV（UTF-8 或 GBK）上传。", ""])
    for letter, width in (("A", 12), ("B", 16), ("C", 70), ("D", 24)):
        guide.column_dimensions[letter].width = width
    for cell in guide[1]:
        cell.font = Font(bold=True)
    path = Path(path)
    book.save(path)
    return path
