"""Measure the compliance lint against labelled cases: per-flag precision / recall / F1, macro F1
over the eight flags, and how many flags it raises on texts that should be clean.

A case is one JSON object per line::

    {"id": "grt-01", "category": "product", "product_type": "wealth", "risk_level": "R2",
     "text": "本产品保本保息……", "expected_flags": ["guaranteed_return_promise"]}

A case counts each flag once however many spans carry it.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kb.errors import ValidationFailed
from kb.models import RISK_LEVELS, Category
from review_workflow.lint import FLAGS, RuleSet, load_rules

CASE_KEYS = {"id", "category", "product_type", "risk_level", "text", "expected_flags"}
OPTIONAL_KEYS = {"note", "notes", "source", "field"}


def _ratio(num: int, den: int, empty: float) -> float:
    return num / den if den else empty


def evaluate_lint(cases: Iterable[Mapping[str, Any]], *, rules: RuleSet | None = None) -> dict[str, Any]:
    """Run the lint over `cases` and score it per flag.

    Returns ``{flag: {tp, fp, fn, precision, recall, f1}}`` for each of the eight flags, plus
    ``macro_f1`` (mean F1 over the eight flags), ``clean_false_positives`` (flags raised on cases
    that expect none), ``n`` and ``n_clean``, and ``mistakes`` (the cases whose flags differ:
    id, expected, got). A flag with no expected and no raised case scores 1.0.
    """
    ruleset = rules or load_rules()
    counts = {flag: {"tp": 0, "fp": 0, "fn": 0} for flag in FLAGS}
    n = n_clean = clean_fp = 0
    mistakes: list[dict[str, Any]] = []
    for case in cases:
        n += 1
        expected = set(case.get("expected_flags") or [])
        findings = ruleset.lint(str(case.get("text") or ""), category=case.get("category"),
                                product_type=case.get("product_type"), risk_level=case.get("risk_level"))
        got = {f.flag for f in findings}
        for flag in FLAGS:
            if flag in got and flag in expected:
                counts[flag]["tp"] += 1
            elif flag in got:
                counts[flag]["fp"] += 1
            elif flag in expected:
                counts[flag]["fn"] += 1
        if not expected:
            n_clean += 1
            clean_fp += len(got)
        if got != expected:
            mistakes.append({"id": case.get("id"), "expected": sorted(expected), "got": sorted(got),
                             "spans": [{"flag": f.flag, "rule": f.rule, "text": f.text} for f in findings]})
    result: dict[str, Any] = {}
    f1s = []
    for flag, c in counts.items():
        tp, fp, fn = c["tp"], c["fp"], c["fn"]
        precision = _ratio(tp, tp + fp, 1.0 if fn == 0 else 0.0)
        recall = _ratio(tp, tp + fn, 1.0 if fp == 0 else 0.0)
        f1 = _ratio(2 * precision * recall, precision + recall, 0.0)
        f1s.append(f1)
        result[flag] = {"tp": tp, "fp": fp, "fn": fn, "precision": round(precision, 4), "recall": round(recall, 4),
                        "f1": round(f1, 4)}
    result["macro_f1"] = round(sum(f1s) / len(f1s), 4)
    result["clean_false_positives"] = clean_fp
    result["n"] = n
    result["n_clean"] = n_clean
    result["rules_version"] = ruleset.version
    result["mistakes"] = mistakes
    return result


def _case_error(path: Path, lineno: int, message: str) -> ValidationFailed:
    return ValidationFailed(f"{path}:{lineno}: 用例无效 invalid case: {message}",
                            errors=[{"field": f"line {lineno}", "line": lineno, "message": message}])


def read_cases(path: Path | str) -> list[dict[str, Any]]:
    """Read a JSONL case file; a malformed line raises ValidationFailed naming the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ValidationFailed(f"{path}: 用例文件不存在 case file not found",
                               errors=[{"field": "cases", "message": "file not found"}]) from None
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"{path}: 用例文件须为 UTF-8 case file is not UTF-8: {exc}",
                               errors=[{"field": "cases", "message": "not UTF-8"}]) from None
    cases: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _case_error(path, lineno, f"not valid JSON ({exc.msg})") from None
        if not isinstance(raw, dict):
            raise _case_error(path, lineno, "each line must be a JSON object")
        unknown = set(raw) - CASE_KEYS - OPTIONAL_KEYS
        if unknown:
            raise _case_error(path, lineno, f"unknown key(s) {sorted(unknown)}")
        case_id = raw.get("id")
        if not isinstance(case_id, (str, int)) or str(case_id).strip() == "":
            raise _case_error(path, lineno, "`id` must be a non-empty string")
        case_id = str(case_id).strip()
        if case_id in seen:
            raise _case_error(path, lineno, f"duplicate id {case_id!r} (first on line {seen[case_id]})")
        seen[case_id] = lineno
        text = raw.get("text")
        if not isinstance(text, str):
            raise _case_error(path, lineno, "`text` must be a string")
        flags = raw.get("expected_flags")
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            raise _case_error(path, lineno, "`expected_flags` must be a list of flag names")
        bad = [f for f in flags if f not in FLAGS]
        if bad:
            raise _case_error(path, lineno, f"unknown flag(s) {bad}; known: {list(FLAGS)}")
        category = raw.get("category")
        if category is not None and str(category).strip():
            try:
                category = Category.parse(str(category)).value
            except ValueError as exc:
                raise _case_error(path, lineno, str(exc)) from None
        else:
            category = None
        product_type = raw.get("product_type")
        if product_type is not None and not isinstance(product_type, str):
            raise _case_error(path, lineno, "`product_type` must be a string or null")
        product_type = product_type.strip() or None if isinstance(product_type, str) else None
        risk = raw.get("risk_level")
        if risk is not None and str(risk).strip():
            risk = str(risk).strip().upper()
            if risk not in RISK_LEVELS:
                raise _case_error(path, lineno, f"`risk_level` must be one of {list(RISK_LEVELS)} or null, got {raw['risk_level']!r}")
        else:
            risk = None
        cases.append({"id": case_id, "category": category, "product_type": product_type, "risk_level": risk,
                      "text": text, "expected_flags": sorted(set(flags)), **{k: raw[k] for k in OPTIONAL_KEYS if k in raw}})
    return cases
