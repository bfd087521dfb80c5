"""Shared by every format: text decoding, locations, and turning parsed fields into a checked pack item."""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from ingestion.parsers.types import ParsedItem, ParseError

OPS = {"新增": "create", "修改": "update", "下线": "retire", "create": "create", "update": "update", "retire": "retire"}
VERSION_FIELDS = ("title", "body", "summary", "category", "product_type", "risk_level", "facts", "script_template",
                  "tags", "synonyms", "related", "valid_from", "valid_to", "review_by")
FIELD_LABELS = {
    "op": "操作", "entry_id": "条目编号", "base_version": "基准版本", "title": "标题", "category": "分类",
    "product_type": "产品类型", "risk_level": "风险等级", "summary": "摘要", "body": "正文", "facts": "关键事实",
    "script_template": "话术模板", "tags": "标签", "synonyms": "同义词", "related": "关联条目", "valid_from": "生效时间",
    "valid_to": "失效时间", "review_by": "复核日期", "product_code": "产品代码", "owner_department": "归属部门",
    "reason": "下线原因", "id": "条目编号",
}


def where(file: str, *, sheet: str | None = None, row: int | None = None, line: int | None = None) -> str:
    """`a.xlsx!Sheet1:row 5`, `a.csv:row 5`, `a.md:3` or just the file name."""
    text = file + (f"!{sheet}" if sheet else "")
    if row is not None:
        text += f":row {row}"
    elif line is not None:
        text += f":{line}"
    return text


def error(file: str, message: str, **loc: Any) -> ParseError:
    """A ParseError whose message starts with the location, so it reads well on its own."""
    place = where(file, sheet=loc.get("sheet"), row=loc.get("row"), line=loc.get("line"))
    refused = bool(loc.pop("refused", False))
    label = FIELD_LABELS.get(loc.get("field") or "", loc.get("field"))
    prefix = f"{place}" + (f" [{label}]" if label else "")
    return ParseError(file=file, message=f"{prefix}: {message}", refused=refused, **loc)


# ---------------------------------------------------------------- text


def decode_text(data: bytes) -> tuple[str | None, str | None]:
    """(text, encoding) for UTF-8 (with or without BOM) or GBK / GB18030; (None, None) when undecodable.

    UTF-8 is tried first (strict); otherwise charset-normalizer must agree the bytes are GB18030 (a superset of
    GB2312 and GBK, so simplified and traditional characters decode as written) before they are accepted.
    """
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        return None, None  # UTF-16 is not one of the supported encodings
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return None, None
    from charset_normalizer import from_bytes

    best = from_bytes(data, cp_isolation=["gb18030", "gbk", "gb2312"]).best()
    if best is None:
        return None, None
    return text, "gb18030"


DATE_RE = re.compile(r"^(\d{4})[/.年-](\d{1,2})[/.月-](\d{1,2})日?(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def normalize_time(value: Any) -> Any:
    """Dates as ISO strings; `2026/7/1`, `2026年7月1日`, `2026.7.1 09:00` become `2026-07-01[T09:00:00]`."""
    if isinstance(value, datetime):
        if value.hour == value.minute == value.second == value.microsecond == 0 and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        match = DATE_RE.match(text)
        if match:
            y, m, d, hh, mm, ss = match.groups()
            try:
                day = date(int(y), int(m), int(d))
            except ValueError:
                return text
            if hh is None:
                return day.isoformat()
            return f"{day.isoformat()}T{int(hh):02d}:{int(mm):02d}:{int(ss or 0):02d}"
        return text
    return value


def jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return normalize_time(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


# ---------------------------------------------------------------- items


def parse_op(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return OPS.get(text.lower() if text.isascii() else text)


def parse_version_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 1 else None
    text = "" if value is None else str(value).strip()
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if re.fullmatch(r"\d+\.0+", text) and int(float(text)) >= 1:
        return int(float(text))
    return None


def build_item(op_value: Any, fields: dict[str, Any], *, file: str, source: str, entry_id: Any = None,
               base_version: Any = None, sheet: str | None = None, row: int | None = None,
               line: int | None = None) -> tuple[ParsedItem | None, list[ParseError]]:
    """Check one item the way the review workflow will, so problems carry their file / sheet / row.

    Returns the item with JSON-ready data (category as its code, risk level upper-case, dates as ISO strings,
    empty fields left out so the knowledge base's defaults apply) or the errors.
    """
    from kb.models import ENTRY_FIELDS, EntryCreate, VersionContent

    loc = {"sheet": sheet, "row": row, "line": line}
    op = parse_op(op_value if op_value not in (None, "") else "create")
    if op is None:
        return None, [error(file, f"操作须为 新增/修改/下线 op must be create/update/retire, got {op_value!r}",
                            field="op", **loc)]
    errors: list[ParseError] = []
    entry_text = "" if entry_id is None else str(entry_id).strip()
    version: int | None = None
    if op in ("update", "retire"):
        if not entry_text:
            errors.append(error(file, f"{op} 需要条目编号 needs the entry id (条目编号)", field="entry_id", **loc))
        if base_version in (None, ""):
            errors.append(error(file, f"{op} 需要基准版本 needs the base version that was edited (基准版本)",
                                field="base_version", **loc))
        else:
            version = parse_version_number(base_version)
            if version is None:
                errors.append(error(file, f"基准版本须为正整数 base version must be a positive integer, got {base_version!r}",
                                    field="base_version", **loc))
    if op == "retire":
        if errors:
            return None, errors
        data: dict[str, Any] = {"entry_id": entry_text, "base_version": version}
        reason = fields.get("reason")
        if reason not in (None, ""):
            data["reason"] = str(reason).strip()
        return ParsedItem(op=op, data=data, source=source), []

    content = {k: v for k, v in fields.items() if k != "reason" and v not in (None, "", [], {})}
    if op == "update":
        content = {k: v for k, v in content.items() if k not in ENTRY_FIELDS}
    for key in ("valid_from", "valid_to", "review_by"):
        if key in content:
            content[key] = normalize_time(content[key])
    check = dict(content)
    model = VersionContent
    if op == "create":
        model = EntryCreate
        if entry_text:
            check["id"] = entry_text
    try:
        validated = model.model_validate(check)
    except ValidationError as exc:
        for problem in exc.errors():
            name = str(problem["loc"][0]) if problem["loc"] else None
            message = problem["msg"].removeprefix("Value error, ")
            if name is None and ":" in message and message.split(":", 1)[0].isidentifier():
                name = message.split(":", 1)[0]
            if name == "id":
                name = "entry_id"
            if problem["type"] == "missing":
                message = "必填 required"
            errors.append(error(file, message, field=name, **loc))
    if errors:
        return None, errors
    if "category" in content:
        content["category"] = validated.category.value
    if "risk_level" in content:
        content["risk_level"] = validated.risk_level
        if content["risk_level"] is None:
            del content["risk_level"]
    for key in ("tags", "synonyms", "related"):
        if key in content:
            content[key] = list(getattr(validated, key))
    if "facts" in content:
        content["facts"] = validated.fact_values()
    if "title" in content:
        content["title"] = validated.title
    data = {}
    if entry_text:
        data["entry_id"] = entry_text
    if version is not None:
        data["base_version"] = version
    data.update(jsonable(content))
    return ParsedItem(op=op, data=data, source=source), []
