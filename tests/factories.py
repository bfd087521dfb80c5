"""Builders for test data, in Chinese like the real thing."""
from __future__ import annotations

from typing import Any

_counter = iter(range(1, 1_000_000))


def entry_data(**overrides: Any) -> dict[str, Any]:
    n = next(_counter)
    data: dict[str, Any] = {
        "id": f"T-{n:04d}",
        "category": "产品体系",
        "product_code": f"WM-{n:03d}",
        "owner_department": "财富管理部",
        "title": f"云岭稳享{n}号理财",
        "body": "本产品为净值型理财产品。\n起购金额1万元。\n理财非存款、产品有风险、投资须谨慎。",
        "summary": "R2 级净值型理财，1万元起购。",
        "product_type": "wealth",
        "risk_level": "R2",
        "facts": {"起购金额": {"value": "1", "unit": "万元"}, "期限": {"value": "90", "unit": "天"}},
        "script_template": "您好，该产品起购金额为1万元。理财非存款、产品有风险、投资须谨慎。",
        "tags": ["理财", "净值型"],
        "synonyms": ["稳享理财"],
        "related": [],
        "valid_from": "2026-01-01T00:00:00+08:00",
        "review_by": "2027-01-01",
    }
    data.update(overrides)
    return data


def version_data(entry: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The content fields of an entry dict, for add_version."""
    data = {k: v for k, v in entry.items() if k not in ("id", "product_code", "owner_department")}
    data.update(overrides)
    return data


def pack_data(*items: dict[str, Any], title: str = "理财产品起购金额调整") -> dict[str, Any]:
    return {"title": title, "items": list(items)}


def create_item(**overrides: Any) -> dict[str, Any]:
    data = entry_data(**overrides)
    entry_id = data.pop("id")
    return {"op": "create", "entry_id": entry_id, **data}


def update_item(entry: dict[str, Any], base_version: int, **overrides: Any) -> dict[str, Any]:
    return {"op": "update", "entry_id": entry["id"], "base_version": base_version, **version_data(entry, **overrides)}
