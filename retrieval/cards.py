"""Knowledge cards: what an agent sees for one entry version — summary, key facts, script, the
mandatory risk disclosure, a citation, and a marker when the entry changed recently."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session

from kb import attachments as kb_attachments
from kb import service
from kb.models import AttachmentPublic, Category, EntryVersion
from kb.timeutil import to_local, to_utc, utcnow

DEFAULT_NOTICE_DAYS = 7
CHANGED_MESSAGE = "该产品信息已变更，请注意话术更新"

# The disclosure an agent must read out for each product type that needs one (regulators' wording).
RISK_DISCLOSURES = {
    "wealth": "理财非存款、产品有风险、投资须谨慎。",
    "fund": "基金有风险，投资须谨慎。",
    "insurance": "保险产品不是存款，不保证收益，投保须谨慎。",
    "precious_metal": "贵金属价格波动较大，投资有风险，入市须谨慎。",
    "pension": "个人养老金资金投资的理财、基金等产品有风险，投资须谨慎。",
}
PAST_PERFORMANCE = "过往业绩不代表未来收益。"


@dataclass(frozen=True)
class Citation:
    entry_id: str
    version: int
    valid_from: datetime

    @property
    def text(self) -> str:
        return f"{self.entry_id} 第{self.version}版，{to_local(self.valid_from):%Y-%m-%d}起生效"


@dataclass(frozen=True)
class KeyFact:
    key: str
    value: str
    unit: str | None

    @property
    def text(self) -> str:
        return f"{self.value}{self.unit or ''}"


@dataclass
class Card:
    entry_id: str
    version: int
    title: str
    category: str
    category_label: str
    product_type: str | None
    risk_level: str | None
    summary: str
    facts: list[KeyFact]
    script_template: str
    risk_disclosure: str | None
    citation: Citation
    changed: bool = False
    change_summary: str | None = None
    changed_at: datetime | None = None
    reasons: list[str] = field(default_factory=list)
    related: list[dict[str, str]] = field(default_factory=list)
    attachments: list[AttachmentPublic] = field(default_factory=list)  # files and links, signed-in download


def risk_disclosure(version: EntryVersion) -> str | None:
    """The disclosure this product's type requires; past-performance wording when returns are cited."""
    needed = RISK_DISCLOSURES.get(version.product_type or "")
    if needed is None and version.risk_level and version.category == Category.PRODUCT:
        needed = RISK_DISCLOSURES["wealth"]
    if needed is None:
        return None
    text = f"{version.body}{version.script_template}"
    if any(word in text for word in ("业绩", "年化收益", "收益率", "净值增长")):
        needed += PAST_PERFORMANCE
    return needed


def build_card(*, session: Session, version: EntryVersion, now: datetime | None = None,
               notice_days: float = DEFAULT_NOTICE_DAYS) -> Card:
    """The card of one version, with the change marker if a notice took effect within `notice_days`."""
    now = to_utc(now) or utcnow()
    notices = service.notices_since(session=session, since=now - timedelta(days=notice_days), until=now,
                                    entry_ids=[version.entry_id])
    latest = notices[0] if notices else None
    return Card(
        entry_id=version.entry_id, version=version.number, title=version.title, category=version.category,
        category_label=Category(version.category).label, product_type=version.product_type,
        risk_level=version.risk_level, summary=version.summary,
        facts=[KeyFact(k, str(v.get("value", "")), v.get("unit")) for k, v in (version.facts or {}).items()],
        script_template=version.script_template, risk_disclosure=risk_disclosure(version),
        citation=Citation(version.entry_id, version.number, version.valid_from),
        changed=latest is not None, change_summary=latest.summary if latest else None,
        changed_at=latest.effective_at if latest else None,
        attachments=kb_attachments.for_version(session=session, version_id=version.id),
    )


def cards_for(*, session: Session, entry_ids: list[str], at: datetime | None = None,
              notice_days: float = DEFAULT_NOTICE_DAYS) -> list[Card]:
    """Cards of the versions in force at `at` for these entries, in the given order (retired ones skipped)."""
    cards = []
    for entry_id in entry_ids:
        version = service.entry_as_of(session=session, entry_id=entry_id, at=at)
        if version is not None:
            cards.append(build_card(session=session, version=version, now=at, notice_days=notice_days))
    return cards
