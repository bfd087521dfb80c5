"""Request and response bodies of /api/v1 that are not table variants (with Chinese examples for OpenAPI)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kb.models import AttachmentPublic
from kb.timeutil import to_utc


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenIn(Strict):
    username: str = Field(max_length=64, examples=["agent"])
    password: str = Field(max_length=200, examples=["zhiku-demo"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    role: str
    expires_in: int


class ApiKeyIn(Strict):
    name: str = Field(max_length=100, examples=["智能客服机器人"])
    scopes: list[str] = Field(examples=[["retrieve", "feedback"]])
    rate_per_minute: int = Field(default=120, examples=[120])


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    rate_per_minute: int
    created_at: datetime
    revoked_at: datetime | None = None
    key: str | None = Field(default=None, description="Shown once, at creation.")


class SearchFilters(Strict):
    category: str | list[str] | None = Field(default=None, examples=["product"])
    product_type: str | list[str] | None = Field(default=None, examples=["mortgage"])
    tags: list[str] | None = None


def _as_time(value: Any) -> datetime | None:
    try:
        return to_utc(value)
    except (TypeError, ValueError):
        raise ValueError("as_of 须为 ISO 8601 时间 must be an ISO 8601 time") from None


class SearchIn(Strict):
    query: str = Field(max_length=10_000, examples=["房贷利率"])
    top_k: int = Field(default=5, ge=1, le=50)
    filters: SearchFilters | None = None
    as_of: datetime | None = Field(default=None, examples=["2026-06-01T09:00:00+08:00"])

    _t = field_validator("as_of", mode="before")(classmethod(lambda cls, v: _as_time(v)))


class RelatedOut(BaseModel):
    entry_id: str
    title: str
    reason: str


class SearchResultOut(BaseModel):
    entry_id: str
    version: int
    title: str
    snippet: str
    score: float
    category: str
    valid_from: datetime
    changed_recently: bool
    related: list[RelatedOut]


class SearchOut(BaseModel):
    results: list[SearchResultOut]
    took_ms: float
    confidence: float
    handoff: bool


class RetrieveIn(Strict):
    query: str = Field(max_length=10_000, examples=["数字人民币钱包怎么开通"])
    top_k: int = Field(default=3, ge=1, le=20)
    conversation_id: str | None = Field(default=None, max_length=64)


class PassageOut(BaseModel):
    entry_id: str
    version: int
    title: str
    text: str
    score: float
    citation: str


class RetrieveOut(BaseModel):
    passages: list[PassageOut]
    confidence: float
    handoff: bool


class LintIn(Strict):
    text: str = Field(max_length=100_000, examples=["本理财产品保本保收益，稳赚不赔。"])
    category: str | None = None
    product_type: str | None = Field(default=None, examples=["wealth"])
    risk_level: str | None = None


class FindingOut(BaseModel):
    flag: str
    rule: str
    severity: str
    start: int
    end: int
    message: str
    text: str = ""


class LintOut(BaseModel):
    findings: list[FindingOut]
    rules_version: str


class FeedbackIn(Strict):
    entry_id: str = Field(max_length=64, examples=["KB-S002"])
    version: int = Field(ge=1)
    query: str | None = Field(default=None, max_length=2000)
    conversation_id: str | None = Field(default=None, max_length=64)
    useful: bool
    comment: str | None = Field(default=None, max_length=2000)


class RejectIn(Strict):
    comment: str = Field(max_length=5000, examples=["风险提示不完整，请补充「理财非存款、产品有风险、投资须谨慎」"])


class RollbackIn(Strict):
    to_version: int = Field(ge=1)
    reason: str = Field(max_length=2000, examples=["误发布，恢复上一版"])


class DiffOut(BaseModel):
    entry_id: str
    from_version: int
    to_version: int
    fields: list[dict[str, Any]]
    facts: list[dict[str, Any]]
    body: list[str]


class Page(BaseModel):
    data: list[Any]
    count: int


# Cards and entries list attachments in this shape: {id, kind (file | link), filename, media_type, size, url};
# `url` is GET /api/v1/attachments/{id} for a file (signed-in download), the external address for a link.
AttachmentOut = AttachmentPublic


# ---------------------------------------------------------------- live conversations


class ConversationIn(Strict):
    customer_id: str | None = Field(default=None, max_length=64, examples=["C20260001"])
    channel: str | None = Field(default="phone", max_length=20, examples=["phone"],
                                description="app | branch | phone | wechat | web")
    agent: str | None = Field(default=None, max_length=64, examples=["agent"])


class PastConversationOut(BaseModel):
    id: str
    channel: str
    opened_at: datetime
    closed_at: datetime | None
    topics: list[str]


class ConversationOut(BaseModel):
    id: str
    customer_id: str | None
    channel: str
    agent: str | None
    opened_at: datetime
    closed_at: datetime | None
    turns: int
    revision: int
    previous: list[PastConversationOut] = []


class UtteranceIn(Strict):
    speaker: str = Field(examples=["customer"], description="customer | agent")
    text: str = Field(max_length=2000, examples=["我想问一下房贷提前还款要不要预约"])
    final: bool = Field(default=True, description="false for a speech-to-text partial (may be coalesced)")


class UtteranceOut(BaseModel):
    seq: int
    speaker: str
    text: str
    ts: datetime


class FactOut(BaseModel):
    key: str
    value: str
    unit: str | None
    text: str


class CitationOut(BaseModel):
    entry_id: str
    version: int
    valid_from: datetime
    text: str


class CardOut(BaseModel):
    entry_id: str
    version: int
    title: str
    category: str
    category_label: str
    product_type: str | None
    risk_level: str | None
    summary: str
    facts: list[FactOut]
    script_template: str
    risk_disclosure: str | None
    citation: CitationOut
    changed: bool
    change_message: str | None = Field(default=None, examples=["该产品信息已变更，请注意话术更新"])
    change_summary: str | None
    changed_at: datetime | None
    reasons: list[str] = Field(examples=[["因为提到：房贷 提前还款"]])
    related: list[dict[str, Any]] = []
    attachments: list[AttachmentOut] = []


class CardsOut(BaseModel):
    conversation_id: str
    revision: int
    event: str = "cards"
    changed: bool
    coalesced: bool = False
    took_ms: float = 0.0
    cards: list[CardOut]


class ImpressionOut(BaseModel):
    id: int
    ts: datetime
    conversation_id: str
    customer_id: str | None
    channel: str
    agent: str | None
    entry_id: str
    version: int
    category: str
    product_type: str | None
    action: str
    reason: str
    changed: bool
