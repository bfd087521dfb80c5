"""Live conversations, their utterances, and the log of every card an agent was shown."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from kb.models import new_id
from kb.timeutil import utcnow


class Channel(StrEnum):
    APP = "app"
    BRANCH = "branch"
    PHONE = "phone"
    WECHAT = "wechat"
    WEB = "web"


class Conversation(SQLModel, table=True):
    """One customer contact; `state` is the topic tracker's memory (cards, pins, dismissals, products)."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    customer_id: str | None = Field(default=None, index=True, max_length=64)
    channel: str = Field(default=Channel.PHONE, max_length=20)
    agent: str | None = Field(default=None, index=True, max_length=64)
    opened_by: str = Field(max_length=100)
    opened_at: datetime = Field(default_factory=utcnow, index=True)
    closed_at: datetime | None = None
    turns: int = 0
    revision: int = Field(default=0, description="Bumped whenever the card set changes (stream resume point).")
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Utterance(SQLModel, table=True):
    """A final utterance (speech-to-text partials are not stored)."""

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(foreign_key="conversation.id", index=True, max_length=36)
    seq: int
    speaker: str = Field(max_length=10)  # customer | agent
    text: str = Field(sa_column=Column(Text, nullable=False))
    ts: datetime = Field(default_factory=utcnow)


class CardImpression(SQLModel, table=True):
    """An entry version shown to (or pinned / dismissed by) an agent in a conversation — for regulators."""

    __tablename__ = "card_impression"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utcnow, index=True)
    conversation_id: str = Field(index=True, max_length=36)
    customer_id: str | None = Field(default=None, index=True, max_length=64)
    channel: str = Field(max_length=20)
    agent: str | None = Field(default=None, index=True, max_length=64)
    entry_id: str = Field(index=True, max_length=64)
    version: int
    category: str = Field(index=True, max_length=20)
    product_type: str | None = Field(default=None, index=True, max_length=40)
    action: str = Field(default="shown", max_length=20)  # shown | updated | pinned | dismissed
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    changed: bool = False
