"""Form fields → the item dict `review_workflow` validates (the same shape as the API's JSON items)."""
from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData

from ingestion.parsers.tabular import parse_facts, split_list
from kb.errors import ValidationFailed

CONTENT_INPUTS = ("title", "category", "product_type", "risk_level", "summary", "body", "script_template")
LIST_INPUTS = ("tags", "synonyms", "related")
TIME_INPUTS = ("valid_from", "valid_to", "review_by")
ENTRY_INPUTS = ("product_code", "owner_department")


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.replace("\r\n", "\n").strip() if isinstance(value, str) else ""


def text(form: FormData, name: str) -> str:
    return _text(form, name)


def item_from_form(form: FormData) -> dict[str, Any]:
    """One pack item from the pack form; the services validate it (and name the fields on error)."""
    op = _text(form, "op") or "create"
    item: dict[str, Any] = {"op": op}
    entry_id = _text(form, "entry_id")
    if entry_id:
        item["entry_id"] = entry_id
    base = _text(form, "base_version")
    if base:
        if not base.isdigit():
            raise ValidationFailed("基准版本须为数字", errors=[{"field": "base_version", "message": "须为正整数"}])
        item["base_version"] = int(base)
    if op == "retire":
        item["reason"] = _text(form, "reason")
        return item
    for name in CONTENT_INPUTS:
        item[name] = _text(form, name)
    for name in LIST_INPUTS:
        item[name] = split_list(_text(form, name))
    for name in TIME_INPUTS:
        value = _text(form, name)
        item[name] = value or None
    facts, error = parse_facts(_text(form, "facts"))
    if error:
        raise ValidationFailed(f"关键事实格式有误：{error}", errors=[{"field": "facts", "message": error}])
    item["facts"] = facts
    if op == "create":
        for name in ENTRY_INPUTS:
            item[name] = _text(form, name) or None
    return item


def form_values(form: FormData) -> dict[str, str]:
    """What the user typed, to fill the form again after an error."""
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
