"""Compliance lint: the engine. The rules themselves are data in `review_workflow/rules/*.yaml`.

How a text is linted
--------------------
1. It is normalised without changing its length, so every offset found on the normalised text is an
   offset into the original: traditional characters become simplified (OpenCC t2s; if a phrase
   conversion would change the length, characters are converted one by one instead), full-width
   digits, Latin letters and ``％ ＋ － ． ／`` become ASCII, the ideographic space and no-break space
   become a plain space, and hyphen-like dashes become ``-``. Chinese punctuation (，。；：？！“”「」)
   is kept, so rules can tell clauses and quotations apart.
2. Every rule whose ``applies_to`` fits the entry's category / product type / risk level runs.
   A ``match`` rule reports each match of its patterns that passes its validators, satisfies one of
   its ``when`` alternatives (if any) and none of its ``unless`` alternatives (negation, questions,
   quotations, deposit subjects … are all written as ``unless`` alternatives in the rule files).
   A ``missing`` rule reports each trigger match (or, with no trigger, the whole text) for which a
   ``requires`` group is neither found nor waived.
3. Findings of one flag that overlap are merged (the earliest, longest one is kept).

A finding's ``start``/``end`` are character offsets of the matched span in the linted text, and
``text`` is ``original[start:end]``. Findings about the whole text (a missing risk disclosure) have
``start == end == 0`` and empty ``text`` in :func:`lint_text`; :func:`lint_content` anchors them on
the ``title`` field (the product's name).

Condition keys (``applies_to``, ``when``, ``unless``, ``waived``)
-----------------------------------------------------------------
An alternative is a mapping whose keys must all hold; a list of alternatives holds if one does.

* entry context: ``categories``, ``not_categories``, ``product_types``, ``not_product_types``,
  ``risk_levels``, ``risk_level_set`` (bool), ``deposit`` (bool: product type is deposit/large_cd).
  An unknown (None) category or product type satisfies a list only if the list contains ``null``;
  it always satisfies ``not_categories`` / ``not_product_types`` (unless they list ``null``).
* position (for a match): ``before`` (regex searched in the up to ``context_window`` characters
  before the match; anchor it with ``$``), ``after`` (regex matched at the match end),
  ``clause_contains`` / ``clause_lacks``, ``sentence_contains`` / ``sentence_lacks``,
  ``text_contains`` / ``text_lacks``, ``match_contains`` / ``match_lacks`` (lists of regexes, any
  one counts), ``in_quotes`` (bool).

Regexes may use ``<<NAME>>`` to insert a named fragment from any file's ``vocab``; a pattern may
mark the part to report with a named group ``(?P<span>…)``. Regexes are matched on the normalised
text, so write them in simplified characters with ASCII digits and ``%`` (``phrases`` are
normalised for you). Nested lists in ``unless``/``when``/``patterns`` are flattened, so a YAML
anchor under the top-level ``anchors:`` key can be shared by several rules of one file.

Severities (see the rule files): personal data, guaranteed-return promises, a missing risk
disclosure and a missing past-performance disclaimer ``block`` (approval needs an override
reason); absolute claims and loan rates without LPR basis/date ``warn`` (context-dependent, for
the reviewer to judge).
"""
from __future__ import annotations

import bisect
import functools
import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from kb.errors import ValidationFailed
from kb.models import Category

RULES_DIR = Path(__file__).with_name("rules")

FLAGS: tuple[str, ...] = (
    "missing_risk_disclosure",
    "missing_past_performance_disclaimer",
    "guaranteed_return_promise",
    "pii_id_number",
    "pii_phone",
    "pii_bank_card",
    "absolute_claim",
    "rate_without_basis",
)
SEVERITIES = ("block", "warn")
DEPOSIT_TYPES = frozenset({"deposit", "large_cd"})
CONTENT_FIELDS = ("title", "summary", "body", "script_template")


@dataclass(frozen=True)
class Finding:
    """One lint hit: which rule and flag, how severe, where (character offsets), and why."""

    rule: str
    flag: str
    severity: str
    start: int
    end: int
    text: str
    message: str
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "flag": self.flag, "severity": self.severity, "start": self.start, "end": self.end,
                "text": self.text, "message": self.message, "field": self.field}


class RuleFileError(ValidationFailed):
    """A rule file that cannot be used; the message names the file and the rule."""

    code = "invalid_rules"


# ---------------------------------------------------------------- normalisation (length-preserving)

_CHAR_MAP: dict[str, str] = {
    "\u3000": " ", "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2009": " ",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2212": "-", "\ufe63": "-",
}
for _code in range(0xFF10, 0xFF1A):  # ０-９
    _CHAR_MAP[chr(_code)] = chr(_code - 0xFEE0)
for _code in list(range(0xFF21, 0xFF3B)) + list(range(0xFF41, 0xFF5B)):  # Ａ-Ｚ ａ-ｚ
    _CHAR_MAP[chr(_code)] = chr(_code - 0xFEE0)
for _ch in "％＋－．／＂＇＃＠":
    _CHAR_MAP[_ch] = unicodedata.normalize("NFKC", _ch)


@functools.lru_cache(maxsize=1)
def _t2s() -> Callable[[str], str]:
    from kb.chinese import to_simplified  # OpenCC t2s, skipped for text with nothing to convert

    return to_simplified


@functools.lru_cache(maxsize=8192)
def _t2s_char(ch: str) -> str:
    out = _t2s()(ch)
    return out if len(out) == 1 else ch


def normalize_text(text: str) -> str:
    """Traditional → simplified and full-width → ASCII, always with ``len(result) == len(text)``."""
    if not text:
        return text
    converted = _t2s()(text)
    if len(converted) != len(text):
        converted = "".join(_t2s_char(ch) for ch in text)
    out = "".join(_CHAR_MAP.get(ch, ch) for ch in converted)
    assert len(out) == len(text)
    return out


# ---------------------------------------------------------------- checksum validators


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of a mainland resident ID (GB 11643)."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def _id_birth_ok(digits: str, today: date | None = None) -> bool:
    try:
        born = date(int(digits[6:10]), int(digits[10:12]), int(digits[12:14]))
    except ValueError:
        return False
    return 1900 <= born.year and born <= (today or date.today())


def is_id_shaped(value: str) -> bool:
    """18 characters laid out like a resident ID: area code 1-8…, a real birth date; checksum not checked."""
    v = value.upper()
    return (len(v) == 18 and v[:17].isdigit() and (v[17].isdigit() or v[17] == "X") and v[0] in "12345678"
            and v[6:8] in ("19", "20") and _id_birth_ok(v))


def is_valid_resident_id(value: str) -> bool:
    """An 18-character mainland resident ID number with a real birth date and a correct check digit."""
    v = value.upper()
    return is_id_shaped(v) and id_check_digit(v[:17]) == v[17]


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check used by bank card numbers."""
    if not digits.isdigit() or not digits:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _digits(value: str) -> str:
    return re.sub(r"[\s\-]", "", value)


def _card_prefix_ok(digits: str) -> bool:
    return digits[:1] in ("3", "4", "5", "6") or (digits[:1] == "2" and digits[1:2] in "234567" and len(digits) == 16)


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "resident_id": lambda s: is_valid_resident_id(_digits(s)),
    "luhn": lambda s: luhn_ok(_digits(s)),
    "card_length": lambda s: 16 <= len(_digits(s)) <= 19,
    "card_prefix": lambda s: _card_prefix_ok(_digits(s)),
    "not_id_shaped": lambda s: not is_id_shaped(_digits(s)),
}


# ---------------------------------------------------------------- the text being linted


class _Doc:
    """One linted text with its entry context; clause/sentence/quote spans are computed on demand."""

    def __init__(self, text: str, *, category: str | None, product_type: str | None, risk_level: str | None,
                 settings: _Settings) -> None:
        self.text = text
        self.norm = normalize_text(text)
        self.category = category
        self.product_type = product_type
        self.risk_level = risk_level
        self.settings = settings
        self._bounds: dict[str, list[int]] = {}
        self._quotes: list[tuple[int, int]] | None = None
        self.cache: dict[Any, Any] = {}

    def _boundaries(self, kind: str) -> list[int]:
        if kind not in self._bounds:
            chars = self.settings.clause_breaks if kind == "clause" else self.settings.sentence_breaks
            self._bounds[kind] = [i for i, ch in enumerate(self.norm) if ch in chars]
        return self._bounds[kind]

    def scope(self, kind: str, start: int | None, end: int | None) -> str:
        if kind == "text" or start is None or end is None:
            return self.norm
        bounds = self._boundaries(kind)
        i = bisect.bisect_left(bounds, start)  # bounds[:i] lie before the match
        left = bounds[i - 1] + 1 if i > 0 else 0
        j = bisect.bisect_left(bounds, end)  # the scope ends at the first boundary at or after the match end
        right = bounds[j] if j < len(bounds) else len(self.norm)
        if right < left:
            right = left
        return self.norm[left:right]

    def quotes(self) -> list[tuple[int, int]]:
        if self._quotes is None:
            self._quotes = [(m.start(), m.end()) for m in self.settings.quote_re.finditer(self.norm)]
        return self._quotes

    def in_quotes(self, start: int, end: int) -> bool:
        return any(qs < start and end <= qe - 1 for qs, qe in self.quotes())


# ---------------------------------------------------------------- compiled rules


@dataclass
class _Settings:
    clause_breaks: str = "，,；;。！!？?\n"
    sentence_breaks: str = "。！!？?；;\n"
    context_window: int = 80
    quote_re: re.Pattern[str] = field(default_factory=lambda: re.compile(
        r"“[^”\n]{0,120}”|「[^」\n]{0,120}」|『[^』\n]{0,120}』|‘[^’\n]{0,120}’|\"[^\"\n]{0,120}\""))


_CONTEXT_KEYS = {"categories", "not_categories", "product_types", "not_product_types", "risk_levels", "risk_level_set",
                 "deposit"}
_REGEX_LIST_KEYS = {"clause_contains", "clause_lacks", "sentence_contains", "sentence_lacks", "text_contains",
                    "text_lacks", "match_contains", "match_lacks"}
_POSITION_KEYS = {"before", "after", "in_quotes"} | _REGEX_LIST_KEYS
_CONDITION_KEYS = _CONTEXT_KEYS | _POSITION_KEYS


@dataclass
class _Condition:
    categories: frozenset[str] | None = None
    not_categories: frozenset[str] | None = None
    product_types: frozenset[str] | None = None
    not_product_types: frozenset[str] | None = None
    risk_levels: frozenset[str] | None = None
    risk_level_set: bool | None = None
    deposit: bool | None = None
    before: re.Pattern[str] | None = None
    after: re.Pattern[str] | None = None
    in_quotes: bool | None = None
    regexes: dict[str, list[re.Pattern[str]]] = field(default_factory=dict)

    def context_holds(self, doc: _Doc) -> bool:
        if self.categories is not None and doc.category not in self.categories:
            return False
        if self.not_categories is not None and doc.category in self.not_categories:
            return False
        if self.product_types is not None and doc.product_type not in self.product_types:
            return False
        if self.not_product_types is not None and doc.product_type in self.not_product_types:
            return False
        if self.risk_levels is not None and doc.risk_level not in self.risk_levels:
            return False
        if self.risk_level_set is not None and (doc.risk_level is not None) != self.risk_level_set:
            return False
        if self.deposit is not None and (doc.product_type in DEPOSIT_TYPES) != self.deposit:
            return False
        return True

    def holds(self, doc: _Doc, start: int | None = None, end: int | None = None) -> bool:
        if not self.context_holds(doc):
            return False
        norm = doc.norm
        if self.before is not None:
            if start is None:
                return False
            window = norm[max(0, start - doc.settings.context_window):start]
            if not self.before.search(window):
                return False
        if self.after is not None:
            if end is None:
                return False
            if not self.after.match(norm[end:end + doc.settings.context_window]):
                return False
        if self.in_quotes is not None:
            if start is None or end is None or doc.in_quotes(start, end) != self.in_quotes:
                return False
        for key, patterns in self.regexes.items():
            scope_name, mode = key.rsplit("_", 1)
            if scope_name == "match":
                scope = norm[start:end] if start is not None and end is not None else ""
            else:
                scope = doc.scope(scope_name, start, end)
            found = any(p.search(scope) for p in patterns)
            if (mode == "contains") != found:
                return False
        return True


def _any_holds(conditions: list[_Condition], doc: _Doc, start: int | None = None, end: int | None = None) -> bool:
    return any(c.holds(doc, start, end) for c in conditions)


@dataclass
class _Requirement:
    name: str
    patterns: list[re.Pattern[str]]
    scope: str
    waived: list[_Condition]

    def satisfied(self, doc: _Doc, start: int | None, end: int | None) -> bool:
        if self.waived and _any_holds(self.waived, doc, start, end):
            return True
        if self.scope == "text" or start is None:
            key = ("req", id(self))
            if key not in doc.cache:
                doc.cache[key] = any(p.search(doc.norm) for p in self.patterns)
            return doc.cache[key]
        scope = doc.scope(self.scope, start, end)
        return any(p.search(scope) for p in self.patterns)


@dataclass
class Rule:
    """One compiled rule; `source` names the file it came from."""

    id: str
    flag: str
    severity: str
    message: str
    kind: str
    source: str
    applies_to: list[_Condition]
    patterns: list[re.Pattern[str]] = field(default_factory=list)
    validate: list[str] = field(default_factory=list)
    when: list[_Condition] = field(default_factory=list)
    unless: list[_Condition] = field(default_factory=list)
    requires: list[_Requirement] = field(default_factory=list)
    description: str = ""
    once: bool = False

    def applies(self, doc: _Doc) -> bool:
        return not self.applies_to or any(c.context_holds(doc) for c in self.applies_to)

    def _matches(self, doc: _Doc) -> Iterable[tuple[int, int]]:
        for pattern in self.patterns:
            for m in pattern.finditer(doc.norm):
                start, end = m.span("span") if "span" in pattern.groupindex else m.span()
                if start < 0 or end <= start:
                    continue
                span_text = doc.norm[start:end]
                if not all(VALIDATORS[v](span_text) for v in self.validate):
                    continue
                if self.when and not _any_holds(self.when, doc, start, end):
                    continue
                if self.unless and _any_holds(self.unless, doc, start, end):
                    continue
                yield start, end

    def run(self, doc: _Doc) -> list[Finding]:
        if not self.applies(doc):
            return []
        if self.kind == "match":
            return [self._finding(doc, s, e) for s, e in self._matches(doc)]
        spans: Iterable[tuple[int | None, int | None]] = list(self._matches(doc)) if self.patterns else [(None, None)]
        out = []
        for start, end in spans:
            missing = [r.name for r in self.requires if not r.satisfied(doc, start, end)]
            if missing:
                out.append(self._finding(doc, start or 0, end or 0, missing))
                if self.once:
                    break
        return out

    def _finding(self, doc: _Doc, start: int, end: int, missing: list[str] | None = None) -> Finding:
        message = self.message.replace("{missing}", "、".join(missing or []))
        return Finding(rule=self.id, flag=self.flag, severity=self.severity, start=start, end=end,
                       text=doc.text[start:end], message=message)


@dataclass
class RuleSet:
    """All rules loaded from one directory, plus the version string naming them."""

    rules: list[Rule]
    settings: _Settings
    version: str
    files: list[Path]

    def lint(self, text: str, *, category: str | None = None, product_type: str | None = None,
             risk_level: str | None = None) -> list[Finding]:
        doc = _Doc(text or "", category=_norm_category(category), product_type=_norm_product_type(product_type),
                   risk_level=_norm_risk(risk_level), settings=self.settings)
        findings: list[Finding] = []
        for rule in self.rules:
            findings.extend(rule.run(doc))
        return _merge(findings)


def _merge(findings: list[Finding]) -> list[Finding]:
    """Drop a finding that overlaps an earlier, longer one of the same flag."""
    kept: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.start, -(f.end - f.start), f.rule)):
        clash = any(k.flag == f.flag and ((k.start < f.end and f.start < k.end) or (k.start, k.end) == (f.start, f.end))
                    for k in kept)
        if not clash:
            kept.append(f)
    return kept


# ---------------------------------------------------------------- loading and schema validation


_TOP_KEYS = {"version", "description", "vocab", "settings", "rules", "anchors"}
_RULE_KEYS = {"id", "flag", "severity", "message", "description", "kind", "applies_to", "patterns", "phrases",
              "validate", "when", "unless", "trigger", "requires", "ignore_case", "once"}
_TRIGGER_KEYS = {"patterns", "phrases", "when", "unless", "validate"}
_REQUIRE_KEYS = {"name", "patterns", "phrases", "scope", "waived"}
_SETTINGS_KEYS = {"clause_breaks", "sentence_breaks", "context_window", "quotes"}
_VOCAB_REF = re.compile(r"<<([A-Za-z_][A-Za-z0-9_]*)>>")


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, file: str, rule: str | None, key: str, message: str) -> None:
        where = f"{file}" + (f": rule {rule}" if rule else "")
        self.items.append({"field": f"{file}#{rule or '-'}.{key}", "file": file, "rule": rule, "key": key,
                           "message": f"{where}: {key}: {message}"})

    def raise_if_any(self) -> None:
        if self.items:
            head = "; ".join(e["message"] for e in self.items[:5])
            more = f" (+{len(self.items) - 5} more)" if len(self.items) > 5 else ""
            raise RuleFileError(f"规则文件无效 invalid lint rules: {head}{more}", errors=self.items)


def _expand(pattern: str, vocab: dict[str, str], depth: int = 0) -> str:
    if depth > 10:
        raise KeyError("vocab nesting too deep (a cycle?)")

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in vocab:
            raise KeyError(f"unknown vocab name <<{name}>>")
        return "(?:" + _expand(vocab[name], vocab, depth + 1) + ")"

    return _VOCAB_REF.sub(sub, pattern)


class _Compiler:
    def __init__(self, errors: _Errors, vocab: dict[str, str]) -> None:
        self.errors = errors
        self.vocab = vocab

    def regex(self, raw: Any, file: str, rule: str | None, key: str, flags: int = 0) -> re.Pattern[str] | None:
        if not isinstance(raw, str) or not raw:
            self.errors.add(file, rule, key, f"must be a non-empty string (regex), got {raw!r}")
            return None
        try:
            return re.compile(_expand(raw, self.vocab), flags)
        except KeyError as exc:
            self.errors.add(file, rule, key, str(exc.args[0]))
        except re.error as exc:
            self.errors.add(file, rule, key, f"invalid regex {raw!r}: {exc}")
        return None

    def regex_list(self, raw: Any, file: str, rule: str | None, key: str, flags: int = 0) -> list[re.Pattern[str]]:
        if isinstance(raw, str):
            raw = [raw]
        if isinstance(raw, list):
            raw = _flatten(raw)
        if not isinstance(raw, list) or not raw:
            self.errors.add(file, rule, key, "must be a non-empty list of regexes")
            return []
        out = [self.regex(item, file, rule, f"{key}[{i}]", flags) for i, item in enumerate(raw)]
        return [p for p in out if p is not None]

    def patterns(self, spec: Mapping[str, Any], file: str, rule: str, prefix: str, flags: int) -> list[re.Pattern[str]]:
        out: list[re.Pattern[str]] = []
        if "patterns" in spec:
            out.extend(self.regex_list(spec["patterns"], file, rule, f"{prefix}patterns", flags))
        if "phrases" in spec:
            phrases = spec["phrases"]
            if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and p for p in phrases):
                self.errors.add(file, rule, f"{prefix}phrases", "must be a non-empty list of strings")
            else:
                alternation = "|".join(re.escape(normalize_text(p)) for p in sorted(set(phrases), key=len, reverse=True))
                out.append(re.compile(alternation, flags))
        return out

    def conditions(self, raw: Any, file: str, rule: str, key: str, *, context_only: bool = False,
                   flags: int = 0) -> list[_Condition]:
        if raw is None:
            return []
        if isinstance(raw, Mapping):
            raw = [raw]
        if not isinstance(raw, list):
            self.errors.add(file, rule, key, "must be a mapping or a list of mappings")
            return []
        raw = _flatten(raw)
        out = []
        for i, alt in enumerate(raw):
            where = f"{key}[{i}]"
            if not isinstance(alt, Mapping) or not alt:
                self.errors.add(file, rule, where, "must be a non-empty mapping of conditions")
                continue
            allowed = _CONTEXT_KEYS if context_only else _CONDITION_KEYS
            unknown = set(alt) - allowed
            if unknown:
                self.errors.add(file, rule, where, f"unknown condition key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
                continue
            cond = _Condition()
            for ck in ("categories", "not_categories", "product_types", "not_product_types", "risk_levels"):
                if ck in alt:
                    value = alt[ck]
                    if isinstance(value, str) or value is None:
                        value = [value]
                    if not isinstance(value, list) or not all(v is None or isinstance(v, str) for v in value):
                        self.errors.add(file, rule, f"{where}.{ck}", "must be a list of strings (null = unknown)")
                        continue
                    if ck in ("categories", "not_categories"):
                        value = [None if v is None else (_norm_category(v) or v) for v in value]
                    elif ck == "risk_levels":
                        value = [None if v is None else v.upper() for v in value]
                    else:
                        value = [_norm_product_type(v) for v in value]
                    setattr(cond, ck, frozenset(value))
            for bk in ("risk_level_set", "deposit", "in_quotes"):
                if bk in alt:
                    if not isinstance(alt[bk], bool):
                        self.errors.add(file, rule, f"{where}.{bk}", "must be true or false")
                    else:
                        setattr(cond, bk, alt[bk])
            for pk in ("before", "after"):
                if pk in alt:
                    setattr(cond, pk, self.regex(alt[pk], file, rule, f"{where}.{pk}", flags))
            for rk in _REGEX_LIST_KEYS & set(alt):
                cond.regexes[rk] = self.regex_list(alt[rk], file, rule, f"{where}.{rk}", flags)
            out.append(cond)
        return out


def _compile_rule(comp: _Compiler, raw: Any, file: str, index: int, seen: dict[str, str]) -> Rule | None:
    errors = comp.errors
    if not isinstance(raw, Mapping):
        errors.add(file, f"#{index + 1}", "rule", "each rule must be a mapping")
        return None
    rid = raw.get("id")
    if not isinstance(rid, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.\-]*", rid or ""):
        errors.add(file, f"#{index + 1}", "id", f"missing or invalid rule id {rid!r}")
        rid = f"#{index + 1}"
    elif rid in seen:
        errors.add(file, rid, "id", f"duplicate rule id (also in {seen[rid]})")
    else:
        seen[rid] = file
    before = len(errors.items)
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        errors.add(file, rid, "keys", f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}")
    flag = raw.get("flag")
    if flag not in FLAGS:
        errors.add(file, rid, "flag", f"must be one of {list(FLAGS)}, got {flag!r}")
    severity = raw.get("severity")
    if severity not in SEVERITIES:
        errors.add(file, rid, "severity", f"must be block or warn, got {severity!r}")
    message = raw.get("message")
    if not isinstance(message, str) or not message.strip():
        errors.add(file, rid, "message", "must be a non-empty string")
    kind = raw.get("kind", "match")
    if kind not in ("match", "missing"):
        errors.add(file, rid, "kind", f"must be match or missing, got {kind!r}")
    ignore_case = raw.get("ignore_case", True)
    if not isinstance(ignore_case, bool):
        errors.add(file, rid, "ignore_case", "must be true or false")
        ignore_case = True
    flags = re.IGNORECASE if ignore_case else 0
    applies_to = comp.conditions(raw.get("applies_to"), file, rid, "applies_to", context_only=True)

    patterns: list[re.Pattern[str]] = []
    validate: list[str] = []
    when: list[_Condition] = []
    unless: list[_Condition] = []
    requires: list[_Requirement] = []

    def matching(spec: Mapping[str, Any], prefix: str) -> None:
        nonlocal patterns, validate, when, unless
        if "patterns" not in spec and "phrases" not in spec:
            errors.add(file, rid, f"{prefix}patterns", "needs `patterns` (regexes) or `phrases` (literal strings)")
        patterns = comp.patterns(spec, file, rid, prefix, flags)
        raw_validate = spec.get("validate", [])
        if isinstance(raw_validate, str):
            raw_validate = [raw_validate]
        if not isinstance(raw_validate, list) or any(v not in VALIDATORS for v in raw_validate):
            errors.add(file, rid, f"{prefix}validate", f"must list validators from {sorted(VALIDATORS)}, got {raw_validate!r}")
        else:
            validate = list(raw_validate)
        when = comp.conditions(spec.get("when"), file, rid, f"{prefix}when", flags=flags)
        unless = comp.conditions(spec.get("unless"), file, rid, f"{prefix}unless", flags=flags)

    if kind == "match":
        for key in ("trigger", "requires"):
            if key in raw:
                errors.add(file, rid, key, "only `missing` rules have a trigger / requires")
        matching(raw, "")
    elif kind == "missing":
        for key in ("patterns", "phrases", "when", "unless", "validate"):
            if key in raw:
                errors.add(file, rid, key, "a `missing` rule puts its patterns under `trigger`")
        trigger = raw.get("trigger")
        if trigger is not None:
            if not isinstance(trigger, Mapping):
                errors.add(file, rid, "trigger", "must be a mapping")
            else:
                extra = set(trigger) - _TRIGGER_KEYS
                if extra:
                    errors.add(file, rid, "trigger", f"unknown key(s) {sorted(extra)}")
                matching(trigger, "trigger.")
        raw_requires = raw.get("requires")
        if not isinstance(raw_requires, list) or not raw_requires:
            errors.add(file, rid, "requires", "a `missing` rule needs a non-empty list of requirement groups")
        else:
            for i, group in enumerate(raw_requires):
                where = f"requires[{i}]"
                if not isinstance(group, Mapping):
                    errors.add(file, rid, where, "must be a mapping")
                    continue
                extra = set(group) - _REQUIRE_KEYS
                if extra:
                    errors.add(file, rid, where, f"unknown key(s) {sorted(extra)}")
                name = group.get("name")
                if not isinstance(name, str) or not name:
                    errors.add(file, rid, f"{where}.name", "must be a non-empty string")
                    name = where
                scope = group.get("scope", "text")
                if scope not in ("text", "sentence", "clause"):
                    errors.add(file, rid, f"{where}.scope", f"must be text, sentence or clause, got {scope!r}")
                if "patterns" not in group and "phrases" not in group:
                    errors.add(file, rid, f"{where}.patterns", "needs `patterns` or `phrases`")
                pats = comp.patterns(group, file, rid, f"{where}.", flags)
                waived = comp.conditions(group.get("waived"), file, rid, f"{where}.waived", flags=flags)
                requires.append(_Requirement(name=name, patterns=pats, scope=scope, waived=waived))
    once = raw.get("once", False)
    if not isinstance(once, bool) or (once and kind != "missing"):
        errors.add(file, rid, "once", "must be true or false, and only on `missing` rules")
    if len(errors.items) > before:
        return None
    return Rule(id=rid, flag=flag, severity=severity, message=message.strip(), kind=kind, source=file,
                applies_to=applies_to, patterns=patterns, validate=validate, when=when, unless=unless,
                requires=requires, description=str(raw.get("description", "")).strip(), once=bool(once))


def _flatten(items: list[Any]) -> list[Any]:
    """Nested lists of alternatives (YAML aliases of shared lists) become one flat list."""
    out: list[Any] = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def load_rules(path: Path | str | None = None) -> RuleSet:
    """Load and validate every ``*.yaml`` rule file in `path` (default: the packaged rules directory).

    The default directory is loaded once and cached; pass a path (a directory or one file) to load
    other rules, e.g. in tests. A broken file raises :class:`RuleFileError` naming the file and rule.
    """
    if path is None:
        return _default_rules()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _default_rules() -> RuleSet:
    return _load(RULES_DIR)


def clear_cache() -> None:
    """Forget the cached default rules (they are read again on next use)."""
    _default_rules.cache_clear()


def _load(path: Path) -> RuleSet:
    errors = _Errors()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        files = []
    if not files:
        raise RuleFileError(f"没有规则文件 no rule files found at {path}",
                            errors=[{"field": str(path), "message": "no *.yaml rule files"}])
    docs: list[tuple[Path, dict[str, Any]]] = []
    digest = hashlib.sha256()
    for file in files:
        raw_bytes = file.read_bytes()
        digest.update(file.name.encode() + b"\0" + raw_bytes)
        try:
            data = yaml.safe_load(raw_bytes.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            errors.add(file.name, None, "yaml", f"cannot parse: {exc}")
            continue
        if not isinstance(data, Mapping):
            errors.add(file.name, None, "file", "top level must be a mapping with `version` and `rules`")
            continue
        unknown = set(data) - _TOP_KEYS
        if unknown:
            errors.add(file.name, None, "file", f"unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
        if not isinstance(data.get("version"), (str, int, float)) or str(data.get("version")).strip() == "":
            errors.add(file.name, None, "version", "every rule file needs a top-level `version`")
        if "rules" in data and not isinstance(data["rules"], list):
            errors.add(file.name, None, "rules", "must be a list")
        docs.append((file, dict(data)))

    vocab: dict[str, str] = {}
    vocab_origin: dict[str, str] = {}
    settings = _Settings()
    for file, data in docs:
        raw_vocab = data.get("vocab") or {}
        if not isinstance(raw_vocab, Mapping):
            errors.add(file.name, None, "vocab", "must be a mapping NAME: regex")
            continue
        for name, value in raw_vocab.items():
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not isinstance(value, str):
                errors.add(file.name, None, f"vocab.{name}", "names are identifiers and values regex strings")
            elif name in vocab:
                errors.add(file.name, None, f"vocab.{name}", f"defined twice (also in {vocab_origin[name]})")
            else:
                vocab[name], vocab_origin[name] = value, file.name
        raw_settings = data.get("settings")
        if raw_settings is not None:
            _apply_settings(settings, raw_settings, file.name, errors)
    comp = _Compiler(errors, vocab)
    for name in vocab:
        comp.regex(f"<<{name}>>", vocab_origin[name], None, f"vocab.{name}")
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    versions = []
    for file, data in docs:
        versions.append(f"{file.stem}={str(data.get('version', '')).strip()}")
        for i, raw_rule in enumerate(data.get("rules") or []):
            rule = _compile_rule(comp, raw_rule, file.name, i, seen)
            if rule is not None:
                rules.append(rule)
    errors.raise_if_any()
    version = ";".join(versions) + "#" + digest.hexdigest()[:10]
    return RuleSet(rules=rules, settings=settings, version=version, files=files)


def _apply_settings(settings: _Settings, raw: Any, file: str, errors: _Errors) -> None:
    if not isinstance(raw, Mapping):
        errors.add(file, None, "settings", "must be a mapping")
        return
    unknown = set(raw) - _SETTINGS_KEYS
    if unknown:
        errors.add(file, None, "settings", f"unknown key(s) {sorted(unknown)}")
    for key in ("clause_breaks", "sentence_breaks"):
        if key in raw:
            if isinstance(raw[key], str) and raw[key]:
                setattr(settings, key, raw[key].replace("\\n", "\n"))
            else:
                errors.add(file, None, f"settings.{key}", "must be a non-empty string of characters")
    if "context_window" in raw:
        if isinstance(raw["context_window"], int) and 1 <= raw["context_window"] <= 1000:
            settings.context_window = raw["context_window"]
        else:
            errors.add(file, None, "settings.context_window", "must be an integer 1-1000")
    if "quotes" in raw:
        try:
            settings.quote_re = re.compile(str(raw["quotes"]))
        except re.error as exc:
            errors.add(file, None, "settings.quotes", f"invalid regex: {exc}")


# ---------------------------------------------------------------- entry context


def _norm_category(value: Any) -> str | None:
    if value is None:
        return None
    text = str(getattr(value, "value", value)).strip()
    if not text:
        return None
    try:
        return Category.parse(text).value
    except ValueError:
        return text.lower()


def _norm_product_type(value: Any) -> str | None:
    if value is None or not str(value).strip():
        return None
    return str(value).strip().lower()


def _norm_risk(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper()
    return None if text in ("", "NONE", "NULL", "无") else text


# ---------------------------------------------------------------- public API


def lint_text(text: str, *, category: str | None = None, product_type: str | None = None,
              risk_level: str | None = None) -> list[Finding]:
    """Lint one text with the default rules; findings sorted by position."""
    return load_rules().lint(text, category=category, product_type=product_type, risk_level=risk_level)


def content_segments(content: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (field, text) pieces that :func:`lint_content` joins with newlines, in order.

    Facts become one line each, ``key：value unit``, under the field name ``facts.<key>``.
    """
    segments = [(name, str(content.get(name) or "")) for name in CONTENT_FIELDS]
    facts = content.get("facts") or {}
    if isinstance(facts, Mapping):
        for key, fact in facts.items():
            if isinstance(fact, Mapping):
                value, unit = fact.get("value"), fact.get("unit")
            else:
                value, unit = fact, None
            line = f"{key}：{'' if value is None else value}{'' if unit in (None, '') else unit}"
            segments.append((f"facts.{key}", line))
    return segments


def lint_content(content: Mapping[str, Any], *, rules: RuleSet | None = None) -> list[Finding]:
    """Lint an entry version's fields as one text; each finding names its field, offsets are within it.

    A finding about the whole entry (e.g. a missing risk disclosure) is reported on the title.
    """
    ruleset = rules or load_rules()
    segments = content_segments(content)
    joined = "\n".join(text for _, text in segments)
    offsets = []
    pos = 0
    for name, text in segments:
        offsets.append((name, pos, text))
        pos += len(text) + 1
    findings = ruleset.lint(joined, category=content.get("category"), product_type=content.get("product_type"),
                            risk_level=content.get("risk_level"))
    out = []
    for f in findings:
        if f.start == f.end == 0:
            title = offsets[0][2]
            out.append(Finding(rule=f.rule, flag=f.flag, severity=f.severity, start=0, end=len(title), text=title,
                               message=f.message, field="title"))
            continue
        for name, base, text in reversed(offsets):
            if f.start >= base:
                start = f.start - base
                end = min(f.end - base, len(text))
                out.append(Finding(rule=f.rule, flag=f.flag, severity=f.severity, start=start, end=end,
                                   text=text[start:end], message=f.message, field=name))
                break
    return out


def rules_version() -> str:
    """The version of the rules in force: each file's `version` and a hash of their contents."""
    return load_rules().version
