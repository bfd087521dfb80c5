"""Analytics tables (evaluation runs, the golden question set, gaps turned into drafts) and the
public models the analytics services return (the API and the admin dashboard render these)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import field_validator
from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from kb.timeutil import utcnow

# ---------------------------------------------------------------- tables


class EvalRun(SQLModel, table=True):
    """One scored run of a question set (`zhiku eval retrieval`, the golden set), kept to chart quality over releases."""

    __tablename__ = "eval_run"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utcnow, index=True)
    dataset: str = Field(index=True, max_length=200)
    kind: str = Field(default="retrieval", max_length=20)  # retrieval | golden
    corpus: str | None = Field(default=None, max_length=500)
    queries: str | None = Field(default=None, max_length=500)
    n: int = 0
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    app_version: str = Field(default="", max_length=100)
    model: str = Field(default="", max_length=200)
    actor: str = Field(default="", max_length=100)


class GoldenQuestion(SQLModel, table=True):
    """A question experts expect the knowledge base to answer, with the entries that answer it."""

    __tablename__ = "golden_question"

    id: int | None = Field(default=None, primary_key=True)
    question: str = Field(sa_column=Column(Text, nullable=False))
    expected_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    category: str = Field(index=True, max_length=20)
    author: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    active: bool = Field(default=True, index=True)


class GapDraft(SQLModel, table=True):
    """A knowledge gap an expert turned into a draft pack (so the gap list shows it is being handled)."""

    __tablename__ = "gap_draft"

    id: int | None = Field(default=None, primary_key=True)
    gap_id: str = Field(index=True, max_length=40)
    pack_id: str = Field(index=True, max_length=36)
    representative: str = Field(sa_column=Column(Text, nullable=False))
    count: int = 0
    actor: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


# ---------------------------------------------------------------- input


class GoldenQuestionIn(SQLModel):
    question: str
    expected_ids: list[str]
    category: str
    active: bool = True

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("问题不能为空 question must not be empty")
        return value[:2000]

    @field_validator("expected_ids")
    @classmethod
    def _expected(cls, value: list[str]) -> list[str]:
        ids = list(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))
        if not ids:
            raise ValueError("至少填写一个期望条目 at least one expected entry id")
        return ids


class GapDraftIn(SQLModel):
    """The window the gap was found in (the same as the list call), so the gap is recomputed identically."""

    days: int = Field(default=28, gt=0, le=366)
    until: datetime | None = None
    threshold: float | None = Field(default=None, gt=0, lt=1)


# ---------------------------------------------------------------- public (service results)


class WeekCount(SQLModel):
    week: str  # ISO week, bank-local time: 2026-W07
    count: int


class GapPublic(SQLModel):
    """Questions the knowledge base could not answer well, grouped by meaning."""

    id: str
    representative: str
    count: int
    distinct: int
    examples: list[str]
    sources: dict[str, int]  # zero_result | low_confidence | thumbs_down → rows
    first_seen: datetime
    last_seen: datetime
    trend: list[WeekCount]
    nearest_entries: list[str] = Field(default_factory=list)
    draft_pack_id: str | None = None


class GapsPublic(SQLModel):
    data: list[GapPublic]
    count: int
    since: datetime
    until: datetime
    signals: int  # log rows considered (zero-result, low-confidence, 👎 with a query)
    threshold: float


class TopQuestion(SQLModel):
    question: str
    count: int
    variants: list[str]


class WeekTopQuestions(SQLModel):
    week: str
    total: int
    questions: list[TopQuestion]


class FeedbackStat(SQLModel):
    entry_id: str
    title: str
    down: int
    up: int
    down_share: float
    comments: list[str]


class UnusedEntry(SQLModel):
    entry_id: str
    title: str
    category: str
    version: int
    valid_from: datetime
    owner_department: str | None = None


class WeekFreshness(SQLModel):
    week: str
    packs: int
    submit_to_live_hours_p50: float | None
    submit_to_live_hours_p95: float | None
    approve_to_searchable_seconds_p50: float | None
    approve_to_searchable_seconds_p95: float | None
    within_target: float | None  # share of packs live within the target after submission


class OverduePack(SQLModel):
    id: str
    title: str
    submitter: str
    submitted_at: datetime | None
    sla_due_at: datetime | None
    hours_overdue: float


class StaleEntry(SQLModel):
    entry_id: str
    title: str
    version: int
    review_by: date


class LintCoverage(SQLModel):
    """Versions written in the window and how many went through a lint-checked approval."""

    versions: int
    checked: int
    share: float | None
    unchecked: list[dict[str, Any]]


class FreshnessReport(SQLModel):
    target_hours: float
    weeks: list[WeekFreshness]
    overdue: list[OverduePack]
    stale: list[StaleEntry]
    lint: LintCoverage


class EvalRunPublic(SQLModel):
    id: int
    ts: datetime
    dataset: str
    kind: str
    corpus: str | None
    queries: str | None
    n: int
    metrics: dict[str, Any]
    app_version: str
    model: str
    actor: str


class GoldenQuestionPublic(SQLModel):
    id: int
    question: str
    expected_ids: list[str]
    category: str
    author: str
    created_at: datetime
    updated_at: datetime
    active: bool


class GoldenQuestionsPublic(SQLModel):
    data: list[GoldenQuestionPublic]
    count: int
