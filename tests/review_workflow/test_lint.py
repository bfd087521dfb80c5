"""The compliance lint: every labelled case, the checksum validators, span offsets (also through
traditional characters and full-width digits), rule-file schema errors, and the evaluation numbers."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest

from kb.errors import ValidationFailed
from review_workflow import lint
from review_workflow.lint import (
    FLAGS,
    Finding,
    RuleFileError,
    id_check_digit,
    is_valid_resident_id,
    lint_content,
    lint_text,
    load_rules,
    luhn_ok,
    normalize_text,
    rules_version,
)
from review_workflow.lint_eval import evaluate_lint, read_cases

CASES_FILE = Path(__file__).with_name("lint_cases.jsonl")
CASES = read_cases(CASES_FILE)
WEALTH_OK = "理财非存款、产品有风险、投资须谨慎。"


def _flags(findings: list[Finding]) -> set[str]:
    return {f.flag for f in findings}


# ---------------------------------------------------------------- the labelled cases


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_flags_exactly_as_expected(case):
    findings = lint_text(case["text"], category=case["category"], product_type=case["product_type"],
                         risk_level=case["risk_level"])
    assert _flags(findings) == set(case["expected_flags"]), [(f.flag, f.rule, f.text) for f in findings]
    for f in findings:
        assert case["text"][f.start:f.end] == f.text
        assert f.severity in ("block", "warn") and f.message


def test_case_file_covers_every_flag_and_enough_clean_cases():
    assert len(CASES) >= 160
    positives = Counter(flag for case in CASES for flag in case["expected_flags"])
    assert set(positives) == set(FLAGS)
    assert all(positives[flag] >= 12 for flag in FLAGS), positives
    assert sum(1 for case in CASES if not case["expected_flags"]) >= 50
    assert sum(1 for case in CASES if len(case["expected_flags"]) >= 2) >= 5


def test_evaluation_on_the_cases_is_perfect():
    result = evaluate_lint(CASES)
    assert result["n"] == len(CASES)
    assert result["n_clean"] >= 50
    assert result["clean_false_positives"] == 0, result["mistakes"]
    assert result["macro_f1"] == 1.0, result["mistakes"]
    for flag in FLAGS:
        assert result[flag]["f1"] == 1.0
        assert result[flag]["tp"] >= 12


def test_evaluation_counts_errors():
    cases = [
        {"id": "a", "text": "本产品保本保息。", "product_type": "general", "expected_flags": []},
        {"id": "b", "text": "普通的一句话。", "expected_flags": ["pii_phone"]},
        {"id": "c", "text": "联系电话13812345678。", "expected_flags": ["pii_phone"]},
    ]
    result = evaluate_lint(cases)
    assert result["guaranteed_return_promise"] == {"tp": 0, "fp": 1, "fn": 0, "precision": 0.0, "recall": 0.0,
                                                   "f1": 0.0}
    assert result["pii_phone"]["tp"] == 1 and result["pii_phone"]["fn"] == 1
    assert result["pii_phone"]["precision"] == 1.0 and result["pii_phone"]["recall"] == 0.5
    assert result["clean_false_positives"] == 1
    assert result["n"] == 3 and result["n_clean"] == 1
    assert {m["id"] for m in result["mistakes"]} == {"a", "b"}
    assert 0 < result["macro_f1"] < 1


def test_read_cases_names_the_bad_line(tmp_path):
    good = json.dumps({"id": "x", "category": "product", "product_type": "wealth", "risk_level": "r2",
                       "text": "t", "expected_flags": []}, ensure_ascii=False)
    path = tmp_path / "cases.jsonl"
    path.write_text(good + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(ValidationFailed) as err:
        read_cases(path)
    assert ":3:" in err.value.message and err.value.errors[0]["line"] == 3

    path.write_text(good + "\n" + good.replace('"x"', '"y"').replace("[]", '["no_such_flag"]') + "\n", encoding="utf-8")
    with pytest.raises(ValidationFailed, match=r":2:.*no_such_flag"):
        read_cases(path)

    path.write_text(good + "\n" + good + "\n", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="duplicate id"):
        read_cases(path)

    path.write_text(good.replace('"r2"', '"R9"') + "\n", encoding="utf-8")
    with pytest.raises(ValidationFailed, match=":1:.*risk_level"):
        read_cases(path)

    path.write_text(good + "\n", encoding="utf-8")
    [case] = read_cases(path)
    assert case["risk_level"] == "R2" and case["category"] == "product"


# ---------------------------------------------------------------- checksum validators


def test_resident_id_check_digit():
    # the worked example of GB 11643-1999
    assert id_check_digit("11010519491231002") == "X"
    assert is_valid_resident_id("11010519491231002X")
    assert is_valid_resident_id("11010519491231002x")
    assert not is_valid_resident_id("110105194912310021")  # wrong check digit
    assert not is_valid_resident_id("910105194912310021")  # area codes start 1-8
    assert not is_valid_resident_id("110105199902300010")  # 30 February
    assert not is_valid_resident_id("110105209912310018")  # born in the future
    assert not is_valid_resident_id("11010519491231002")  # 17 characters


def test_luhn():
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert not luhn_ok("")
    assert not luhn_ok("4111-1111")


def test_id_number_is_not_also_a_bank_card():
    body = "53010219860415123"
    number = body + id_check_digit(body)
    assert [f.flag for f in lint_text(f"证件号{number}")] == ["pii_id_number"]


def test_numbers_inside_longer_digit_runs_are_not_pii():
    assert lint_text("流水号9913812345678") == []
    assert lint_text("流水号" + "1" + "11010519491231002X") == []
    assert lint_text("金额13800000000元") == []


# ---------------------------------------------------------------- normalisation and spans


def test_normalize_keeps_length_and_simplifies():
    text = "本產品保證收益，零風險，近一年收益率４．２％，電話１３８\u30001234\u30005678。"
    norm = normalize_text(text)
    assert len(norm) == len(text)
    assert "保证收益" in norm and "零风险" in norm and "4.2%" in norm and "138 1234 5678" in norm


def test_normalize_falls_back_to_single_characters_when_a_phrase_changes_length(monkeypatch):
    monkeypatch.setattr(lint, "_t2s", lambda: (lambda s: s if len(s) == 1 else s + "多"))
    lint._t2s_char.cache_clear()
    try:
        assert normalize_text("保證收益") == "保證收益"
    finally:
        lint._t2s_char.cache_clear()


def test_spans_point_into_the_original_traditional_text():
    text = "客戶您好，本產品保證收益、零風險，最高人民法院不算。"
    findings = lint_text(text, category="product", product_type="general")
    spans = {(f.flag, f.text) for f in findings}
    assert ("guaranteed_return_promise", "保證收益") in spans
    assert ("guaranteed_return_promise", "零風險") in spans
    for f in findings:
        assert text[f.start:f.end] == f.text
    assert not any(f.flag == "absolute_claim" for f in findings)


def test_spans_with_full_width_digits_and_spaces():
    text = "回拨号码：１３８\u3000１２３４\u3000５６７８，谢谢。"
    [finding] = lint_text(text)
    assert finding.flag == "pii_phone"
    assert finding.text == "１３８\u3000１２３４\u3000５６７８"
    assert text[finding.start:finding.end] == finding.text


def test_missing_disclosure_is_reported_on_the_whole_text():
    [finding] = lint_text("云岭稳盈理财，1万元起购。", category="product", product_type="wealth", risk_level="R2")
    assert finding.flag == "missing_risk_disclosure" and finding.severity == "block"
    assert (finding.start, finding.end, finding.text) == (0, 0, "")


def test_severities():
    severities = {r.flag: r.severity for r in load_rules().rules}
    assert severities["pii_id_number"] == severities["pii_phone"] == severities["pii_bank_card"] == "block"
    assert severities["guaranteed_return_promise"] == severities["missing_risk_disclosure"] == "block"
    assert severities["missing_past_performance_disclaimer"] == "block"
    assert severities["absolute_claim"] == severities["rate_without_basis"] == "warn"


# ---------------------------------------------------------------- lint_content


def test_lint_content_reports_fields_and_offsets_within_them():
    content = {
        "title": "云岭稳享理财",
        "summary": "R2理财，1元起购。",
        "body": "本产品近一年年化收益率4.1%，保本保息。",
        "script_template": "详询客户经理，电话139 1234 5678。",
        "facts": {"起购金额": {"value": "1", "unit": "元"}, "客户经理手机": {"value": "13912345678", "unit": None}},
        "category": "product",
        "product_type": "wealth",
        "risk_level": "R2",
    }
    findings = lint_content(content)
    by_flag = {(f.flag, f.field): f for f in findings}
    assert set(by_flag) == {
        ("missing_risk_disclosure", "title"),
        ("missing_past_performance_disclaimer", "body"),
        ("guaranteed_return_promise", "body"),
        ("pii_phone", "script_template"),
        ("pii_phone", "facts.客户经理手机"),
    }
    for f in findings:
        source = dict(lint.content_segments(content))[f.field]
        assert source[f.start:f.end] == f.text
    assert by_flag[("missing_risk_disclosure", "title")].text == "云岭稳享理财"
    assert by_flag[("guaranteed_return_promise", "body")].text == "保本保息"
    json.dumps([asdict(f) for f in findings], ensure_ascii=False)


def test_lint_content_sees_a_disclosure_in_any_field():
    content = {"title": "云岭稳享理财", "summary": "", "body": "1元起购。", "script_template": WEALTH_OK, "facts": {},
               "category": "product", "product_type": "wealth", "risk_level": "R2"}
    assert lint_content(content) == []


# ---------------------------------------------------------------- rule files


def test_default_rules_are_cached_and_versioned():
    assert load_rules() is load_rules()
    version = rules_version()
    assert "marketing=" in version and "#" in version
    assert {r.flag for r in load_rules().rules} == set(FLAGS)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


GOOD_RULE = """
version: "1"
vocab:
  WORD: '稳赚'
rules:
  - id: T-001
    flag: guaranteed_return_promise
    severity: block
    message: 测试
    patterns: ['<<WORD>>']
    unless:
      - {before: '不$'}
"""


def test_load_rules_from_another_directory(tmp_path):
    rules = load_rules(_write(tmp_path, "t.yaml", GOOD_RULE))
    assert [r.id for r in rules.rules] == ["T-001"]
    assert [f.text for f in rules.lint("穩賺，但不稳赚")] == ["穩賺"]
    assert rules.version.startswith("t=1#")
    changed = load_rules(_write(tmp_path, "t.yaml", GOOD_RULE.replace("测试", "测试2")))
    assert changed.version != rules.version


@pytest.mark.parametrize(("change", "expected"), [
    (("severity: block", "severity: fatal"), r"t\.yaml: rule T-001: severity"),
    (("flag: guaranteed_return_promise", "flag: no_such_flag"), r"t\.yaml: rule T-001: flag"),
    (("patterns: ['<<WORD>>']", "patterns: ['(unclosed']"), r"t\.yaml: rule T-001: patterns\[0\].*invalid regex"),
    (("patterns: ['<<WORD>>']", "patterns: ['<<NOPE>>']"), r"t\.yaml: rule T-001: patterns\[0\].*NOPE"),
    (("    unless:", "    colour: red\n    unless:"), r"t\.yaml: rule T-001: keys.*colour"),
    (("{before: '不$'}", "{nearby: '不'}"), r"t\.yaml: rule T-001: unless\[0\].*nearby"),
    (('version: "1"\n', ""), r"t\.yaml: version"),
    (("message: 测试", "message: ''"), r"t\.yaml: rule T-001: message"),
    (("    patterns: ['<<WORD>>']\n", ""), r"t\.yaml: rule T-001: patterns"),
])
def test_schema_errors_name_the_file_and_the_rule(tmp_path, change, expected):
    _write(tmp_path, "t.yaml", GOOD_RULE.replace(*change))
    with pytest.raises(RuleFileError, match=expected) as err:
        load_rules(tmp_path)
    assert isinstance(err.value, ValidationFailed)
    assert err.value.errors and all(e["file"] == "t.yaml" for e in err.value.errors)


def test_duplicate_ids_across_files_and_yaml_syntax_errors(tmp_path):
    _write(tmp_path, "a.yaml", GOOD_RULE)
    _write(tmp_path, "b.yaml", GOOD_RULE.replace("WORD", "WORD2"))
    with pytest.raises(RuleFileError, match=r"b\.yaml: rule T-001: id: duplicate rule id \(also in a\.yaml\)"):
        load_rules(tmp_path)
    (tmp_path / "b.yaml").write_text("version: 1\nrules: [\n", encoding="utf-8")
    with pytest.raises(RuleFileError, match=r"b\.yaml: yaml: cannot parse"):
        load_rules(tmp_path)


def test_missing_rules_need_requirements(tmp_path):
    text = """
version: 1
rules:
  - id: M-1
    flag: missing_risk_disclosure
    severity: warn
    kind: missing
    message: m
    patterns: ['x']
"""
    _write(tmp_path, "m.yaml", text)
    with pytest.raises(RuleFileError) as err:
        load_rules(tmp_path)
    keys = {e["key"] for e in err.value.errors}
    assert {"patterns", "requires"} <= keys


def test_no_rule_files(tmp_path):
    with pytest.raises(RuleFileError, match="no rule files"):
        load_rules(tmp_path)


def test_numbers_separated_by_a_space_are_separate_numbers():
    body = "53010219860415123"
    number = body + id_check_digit(body)
    findings = lint_text(f"客户 {number} 13912345678 6222025260181590832")
    assert [(f.flag, f.text) for f in findings] == [
        ("pii_id_number", number), ("pii_phone", "13912345678"), ("pii_bank_card", "6222025260181590832")]
    # grouped forms: 6-8-4 and 4-4-4-4-2 IDs, 4-4-4-4-3 and 6-13 cards
    grouped_id = f"{number[:6]} {number[6:14]} {number[14:]}"
    four_id = " ".join(number[i:i + 4] for i in range(0, 18, 4))
    assert [f.text for f in lint_text(f"证件 {grouped_id}。")] == [grouped_id]
    assert [f.text for f in lint_text(f"证件 {four_id}。")] == [four_id]
    assert [f.text for f in lint_text("卡号 6222-0252-6018-1590-832。")] == ["6222-0252-6018-1590-832"]
    assert [f.text for f in lint_text("卡号 622202 5260181590832。")] == ["622202 5260181590832"]
    # but a grouped run that goes on is one longer number
    assert lint_text("编号 6222 0252 6018 1590 8320 1234") == []
