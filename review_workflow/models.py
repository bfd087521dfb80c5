"""Update packs, their items, reviews and escalations; input and public variants."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import field_validator, model_validator
from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from kb.models import AttachmentPublic, new_id
from kb.timeutil import to_utc, utcnow


class PackState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    PUBLISHED = "published"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class ItemOp(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    RETIRE = "retire"


class UpdatePack(SQLModel, table=True):
    """A set of changes an expert submits together; only review_workflow.machine changes `state`."""

    __tablename__ = "update_pack"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    title: str = Field(max_length=200)
    submitter: str = Field(index=True, max_length=64)
    state: str = Field(default=PackState.DRAFT, index=True, max_length=20)
    revision: int = Field(default=1, description="Bumped on every edit; an approval names the revision it reviewed.")
    source: str | None = Field(default=None, max_length=255, description="Uploaded file name, if any.")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    submitted_at: datetime | None = None
    sla_due_at: datetime | None = Field(default=None, index=True)
    approved_at: datetime | None = None
    approved_by: str | None = Field(default=None, max_length=64)
    effective_at: datetime | None = None
    published_at: datetime | None = None
    searchable_at: datetime | None = None
    escalated_at: datetime | None = None


class PackItem(SQLModel, table=True):
    """One change in a pack: create an entry, update one (naming the base version), or retire one."""

    __tablename__ = "pack_item"
    __table_args__ = (UniqueConstraint("pack_id", "position", name="uq_pack_item_position"),)

    id: int | None = Field(default=None, primary_key=True)
    pack_id: str = Field(foreign_key="update_pack.id", index=True, max_length=36)
    position: int
    op: str = Field(max_length=10)
    entry_id: str | None = Field(default=None, max_length=64)
    base_version: int | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    findings: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    result_version: int | None = None


class Review(SQLModel, table=True):
    """A reviewer's decision on one revision of a pack, with the lint findings it saw."""

    id: int | None = Field(default=None, primary_key=True)
    pack_id: str = Field(foreign_key="update_pack.id", index=True, max_length=36)
    pack_revision: int
    reviewer: str = Field(max_length=64)
    decision: str = Field(max_length=20)  # approve | reject
    comment: str = Field(default="", sa_column=Column(Text, nullable=False))
    override_reason: str | None = Field(default=None, sa_column=Column(Text))
    findings: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    rules_version: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class Escalation(SQLModel, table=True):
    """An overdue pack raised to the reviewer group and the admins."""

    id: int | None = Field(default=None, primary_key=True)
    pack_id: str = Field(foreign_key="update_pack.id", index=True, max_length=36)
    created_at: datetime = Field(default_factory=utcnow)
    due_at: datetime
    notify_roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    resolved_at: datetime | None = None


# ---------------------------------------------------------------- input


class PackItemIn(SQLModel):
    """An item as experts send it: the operation plus the version's fields, flattened."""

    op: ItemOp
    entry_id: str | None = None
    base_version: int | None = None
    # Everything else (title, body, category, facts, …) is validated by kb when the item is checked.
    model_config = {"extra": "allow"}  # type: ignore[assignment]

    @model_validator(mode="after")
    def _needs(self) -> PackItemIn:
        if self.op in (ItemOp.UPDATE, ItemOp.RETIRE):
            if not self.entry_id:
                raise ValueError(f"entry_id: {self.op.value} 需要条目编号 needs entry_id")
            if self.base_version is None:
                raise ValueError(f"base_version: {self.op.value} 需要基准版本 needs the base_version that was edited")
        return self

    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items()}


class PackIn(SQLModel):
    title: str
    items: list[PackItemIn] = Field(default_factory=list)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("更新包标题不能为空 pack title must not be empty")
        return value[:200]


class ApproveIn(SQLModel):
    comment: str = ""
    effective_at: datetime | None = None
    override_reason: str | None = None
    revision: int | None = None

    @field_validator("effective_at", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime | None:
        return to_utc(value)


# ---------------------------------------------------------------- public


class PackItemPublic(SQLModel):
    position: int
    op: str
    entry_id: str | None
    base_version: int | None
    data: dict[str, Any]
    findings: list[dict[str, Any]]
    result_version: int | None


class ReviewPublic(SQLModel):
    reviewer: str
    decision: str
    comment: str
    override_reason: str | None
    pack_revision: int
    created_at: datetime


class PackPublic(SQLModel):
    id: str
    title: str
    submitter: str
    state: str
    revision: int
    source: str | None
    created_at: datetime
    submitted_at: datetime | None
    sla_due_at: datetime | None
    overdue: bool = False
    approved_at: datetime | None
    approved_by: str | None
    effective_at: datetime | None
    published_at: datetime | None
    searchable_at: datetime | None
    items: list[PackItemPublic] = Field(default_factory=list)
    findings: list[dict[str, Any]] = Field(default_factory=list)
    reviews: list[ReviewPublic] = Field(default_factory=list)
    attachments: list[AttachmentPublic] = Field(default_factory=list)
