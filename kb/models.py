"""Tables and their input / public variants: entries with immutable versions, users, the audit chain."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import field_validator, model_validator
from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from kb.timeutil import to_utc, utcnow


class Category(StrEnum):
    """The four branches of the taxonomy; the value is the code name, `label` the Chinese name."""

    PRODUCT = "product"
    PROCESS = "process"
    COMPLIANCE = "compliance"
    FAQ = "faq"

    @property
    def label(self) -> str:
        return CATEGORY_LABELS[self]

    @classmethod
    def parse(cls, value: str) -> Category:
        """Accept the code name or the Chinese name (产品体系 / 业务流程 / 合规要求 / 常见问题)."""
        text = str(value).strip()
        for member, label in CATEGORY_LABELS.items():
            if text.lower() == member.value or text == label:
                return member
        allowed = ", ".join(f"{m.value}/{label}" for m, label in CATEGORY_LABELS.items())
        raise ValueError(f"未知分类 unknown category {value!r}; allowed: {allowed}")


CATEGORY_LABELS: dict[Category, str] = {
    Category.PRODUCT: "产品体系",
    Category.PROCESS: "业务流程",
    Category.COMPLIANCE: "合规要求",
    Category.FAQ: "常见问题",
}

RISK_LEVELS = ("R1", "R2", "R3", "R4", "R5")


class EntryStatus(StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"


class Role(StrEnum):
    AGENT = "agent"
    EXPERT = "expert"
    REVIEWER = "reviewer"
    ADMIN = "admin"


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: the signed-in user (or a system job such as the demo loader) and their role."""

    username: str
    role: str

    def has(self, *roles: Role) -> bool:
        return self.role in {r.value for r in roles}


# ---------------------------------------------------------------- version content


class Fact(SQLModel):
    """One structured fact of a version: 起购金额 → {value: "1", unit: "万元"}."""

    value: str
    unit: str | None = None


class VersionContent(SQLModel):
    """The fields an expert writes for one version of an entry; validated before anything is stored."""

    title: str
    body: str = ""
    summary: str = ""
    category: Category
    product_type: str | None = None
    risk_level: str | None = None
    facts: dict[str, Fact] = Field(default_factory=dict)
    script_template: str = ""
    tags: list[str] = Field(default_factory=list)
    synonyms: list[str] = Field(default_factory=list)
    related: list[str] = Field(default_factory=list)
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    review_by: date | None = None

    @field_validator("title")
    @classmethod
    def _title_not_empty(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("标题不能为空 title must not be empty")
        if len(value) > 200:
            raise ValueError("标题过长 title longer than 200 characters")
        return value

    @field_validator("category", mode="before")
    @classmethod
    def _parse_category(cls, value: Any) -> Category:
        return Category.parse(value)

    @field_validator("risk_level", mode="before")
    @classmethod
    def _parse_risk(cls, value: Any) -> str | None:
        if value is None or str(value).strip() in ("", "none", "无", "null"):
            return None
        text = str(value).strip().upper()
        if text not in RISK_LEVELS:
            raise ValueError(f"风险等级须为 R1–R5 risk level must be one of R1–R5 or empty, got {value!r}")
        return text

    @field_validator("product_type", mode="before")
    @classmethod
    def _blank_product_type(cls, value: Any) -> str | None:
        if value is None or not str(value).strip():
            return None
        return str(value).strip()

    @field_validator("facts", mode="before")
    @classmethod
    def _parse_facts(cls, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("关键事实须为 键→{value, unit} 的映射 facts must be a mapping key -> {value, unit}")
        facts: dict[str, Any] = {}
        for key, fact in value.items():
            if isinstance(fact, dict):
                facts[str(key)] = {"value": "" if fact.get("value") is None else str(fact.get("value")), "unit": fact.get("unit")}
            elif isinstance(fact, (str, int, float)):
                facts[str(key)] = {"value": str(fact), "unit": None}
            else:
                raise ValueError(f"关键事实 {key!r} 的值无效 fact {key!r} must be a value or {{value, unit}}")
        return facts

    @field_validator("tags", "synonyms", "related", mode="before")
    @classmethod
    def _string_list(cls, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [part for part in value.replace("，", ",").replace("、", ",").split(",")]
        if not isinstance(value, (list, tuple)):
            raise ValueError("须为字符串列表 must be a list of strings")
        seen: dict[str, None] = {}
        for item in value:
            text = str(item).strip()
            if text:
                seen.setdefault(text, None)
        return list(seen)

    @field_validator("valid_from", "valid_to", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> datetime | None:
        return to_utc(value)

    @model_validator(mode="after")
    def _window(self) -> VersionContent:
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise ValueError("valid_to: 失效时间须晚于生效时间 valid_to must be after valid_from")
        return self

    def fact_values(self) -> dict[str, dict[str, str | None]]:
        return {key: {"value": fact.value, "unit": fact.unit} for key, fact in self.facts.items()}


# Fields of the entry itself rather than of one version (an update item carries none of them).
ENTRY_FIELDS = ("id", "product_code", "owner_department")


class EntryCreate(VersionContent):
    """A new entry: its stable attributes plus the content of version 1."""

    id: str | None = None
    product_code: str | None = None
    owner_department: str | None = None

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value or len(value) > 64 or any(ch.isspace() or ch in "/\\?#" for ch in value):
            raise ValueError("条目编号无效 entry id must be 1–64 characters without spaces or / \\ ? #")
        return value


# ---------------------------------------------------------------- tables


class Entry(SQLModel, table=True):
    """The stable identity of a piece of knowledge; its content lives in versions."""

    id: str = Field(primary_key=True, max_length=64)
    category: str = Field(index=True, max_length=20)
    product_code: str | None = Field(default=None, index=True, max_length=64)
    owner_department: str | None = Field(default=None, max_length=100)
    status: str = Field(default=EntryStatus.ACTIVE, index=True, max_length=20)
    latest_version: int = Field(default=0, description="Highest version number; the optimistic-lock token.")
    retired_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class EntryVersion(SQLModel, table=True):
    """One immutable version of an entry; a change is always a new row."""

    __tablename__ = "entry_version"
    __table_args__ = (UniqueConstraint("entry_id", "number", name="uq_entry_version_number"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    entry_id: str = Field(foreign_key="entry.id", index=True, max_length=64)
    number: int
    title: str = Field(max_length=200)
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    category: str = Field(max_length=20)
    product_type: str | None = Field(default=None, index=True, max_length=40)
    risk_level: str | None = Field(default=None, max_length=2)
    facts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    script_template: str = Field(default="", sa_column=Column(Text, nullable=False))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    synonyms: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    related: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    valid_from: datetime = Field(index=True)
    valid_to: datetime | None = None
    review_by: date | None = None
    content_hash: str = Field(max_length=64)
    author: str = Field(max_length=64)
    pack_id: str | None = Field(default=None, index=True, max_length=36)
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=64)
    display_name: str = Field(default="", max_length=100)
    password_hash: str = Field(max_length=200)
    role: str = Field(max_length=20)
    department: str | None = Field(default=None, max_length=100)
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """One append-only link of the audit chain: hash = sha256(prev_hash + canonical JSON)."""

    __tablename__ = "audit_event"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    ts: datetime = Field(index=True)
    actor: str = Field(index=True, max_length=64)
    action: str = Field(index=True, max_length=64)
    object_type: str = Field(max_length=40)
    object_id: str = Field(index=True, max_length=64)
    before_hash: str | None = Field(default=None, max_length=64)
    after_hash: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The single row naming the chain's last link; appends lock it so the chain never forks."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int = 0
    hash: str = Field(max_length=64)


class OutboxEvent(SQLModel, table=True):
    """A change the index must apply, written in the same transaction as the change itself.

    The indexing worker applies pending rows idempotently and marks them processed; a crash or a
    down index leaves them pending, so no published change is ever lost.
    """

    __tablename__ = "outbox_event"

    id: int | None = Field(default=None, primary_key=True)
    entry_id: str = Field(index=True, max_length=64)
    reason: str = Field(max_length=40)
    pack_id: str | None = Field(default=None, index=True, max_length=36)
    created_at: datetime = Field(default_factory=utcnow)
    processed_at: datetime | None = Field(default=None, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))


class ChangeNotice(SQLModel, table=True):
    """What changed in an entry when a new version or a retirement took effect, for agents and cards."""

    __tablename__ = "change_notice"

    id: int | None = Field(default=None, primary_key=True)
    entry_id: str = Field(index=True, max_length=64)
    title: str = Field(max_length=200)
    kind: str = Field(max_length=20)  # update | retire
    version: int
    from_version: int
    effective_at: datetime = Field(index=True)
    changes: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    pack_id: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    """A signed-in session: only the SHA-256 of the bearer token is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, index=True, max_length=64)
    username: str = Field(index=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = None


class ApiKey(SQLModel, table=True):
    """A key for a bot or a bank system; shown once, stored as SHA-256, limited to its scopes."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    prefix: str = Field(index=True, max_length=16)
    key_hash: str = Field(unique=True, max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    rate_per_minute: int = 120
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class SearchLog(SQLModel, table=True):
    """Every search and retrieve: who asked what, and which entry versions they were shown."""

    __tablename__ = "search_log"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(index=True, max_length=100)
    role: str = Field(max_length=20)
    kind: str = Field(max_length=20)  # search | retrieve
    query: str = Field(sa_column=Column(Text, nullable=False))
    conversation_id: str | None = Field(default=None, index=True, max_length=64)
    results: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    confidence: float | None = None
    took_ms: float | None = None


class Feedback(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=100)
    entry_id: str = Field(index=True, max_length=64)
    version: int
    useful: bool
    query: str | None = Field(default=None, sa_column=Column(Text))
    conversation_id: str | None = Field(default=None, max_length=64)
    comment: str | None = Field(default=None, sa_column=Column(Text))


class Attachment(SQLModel, table=True):
    """A file or an external link that came with an update pack: the original document, an image, a
    training video. Files are stored once under <data_dir>/attachments/ by their SHA-256."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    kind: str = Field(default="file", max_length=10)  # file | link
    filename: str = Field(max_length=255, description="The name as uploaded (Chinese kept); a link's text.")
    media_type: str = Field(default="application/octet-stream", max_length=100)
    size: int = 0
    sha256: str | None = Field(default=None, index=True, max_length=64)
    url: str | None = Field(default=None, sa_column=Column(Text))
    pack_id: str | None = Field(default=None, index=True, max_length=36)
    uploaded_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class AttachmentLink(SQLModel, table=True):
    """Which pack item an attachment belongs to and, once approved, which entry versions carry it."""

    __tablename__ = "attachment_link"

    id: int | None = Field(default=None, primary_key=True)
    attachment_id: str = Field(foreign_key="attachment.id", index=True, max_length=36)
    pack_id: str | None = Field(default=None, index=True, max_length=36)
    position: int | None = None
    entry_id: str | None = Field(default=None, index=True, max_length=64)
    version_id: str | None = Field(default=None, foreign_key="entry_version.id", index=True, max_length=36)


# ---------------------------------------------------------------- public variants


class AttachmentPublic(SQLModel):
    """An attachment as listed on cards, entries and packs; `url` downloads it (or is the external link)."""

    id: str
    kind: str
    filename: str
    media_type: str
    size: int
    url: str


class EntryVersionPublic(SQLModel):
    id: str
    entry_id: str
    number: int
    title: str
    body: str
    summary: str
    category: str
    product_type: str | None
    risk_level: str | None
    facts: dict[str, Any]
    script_template: str
    tags: list[str]
    synonyms: list[str]
    related: list[str]
    valid_from: datetime
    valid_to: datetime | None
    review_by: date | None
    content_hash: str
    author: str
    pack_id: str | None
    created_at: datetime


class EntryPublic(SQLModel):
    """An entry with the version that is current at the time asked for."""

    id: str
    category: str
    category_label: str
    product_code: str | None
    owner_department: str | None
    status: str
    latest_version: int
    current: EntryVersionPublic | None


class EntriesPublic(SQLModel):
    data: list[EntryPublic]
    count: int


class UserPublic(SQLModel):
    id: int
    username: str
    display_name: str
    role: str
    department: str | None
    active: bool


class ChangeNoticePublic(SQLModel):
    id: int
    entry_id: str
    title: str
    kind: str
    version: int
    from_version: int
    effective_at: datetime
    changes: list[dict[str, Any]]
    summary: str
    pack_id: str | None


class AuditEventPublic(SQLModel):
    id: int
    ts: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before_hash: str | None
    after_hash: str | None
    detail: dict[str, Any]
    hash: str
