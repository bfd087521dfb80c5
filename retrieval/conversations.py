"""Live conversations: open one (linked to the customer's earlier contacts), feed it utterances, keep
its cards (pinned, dismissed, refreshed when a pack publishes), and log every card shown.

Keyword-only services over a session; the topic tracker decides the cards, this module stores the
decision and turns card references into cards of the versions in force."""
from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, insert, update
from sqlmodel import Session, col, select

from kb import audit, service
from kb.db import read_only, session_scope
from kb.errors import Conflict, NotFound, Unavailable, ValidationFailed
from kb.models import Actor, Category, Entry
from kb.timeutil import to_utc, utcnow
from retrieval.cards import Card, build_card
from retrieval.models import CardImpression, Channel, Conversation, Utterance
from retrieval.topics import AGENT, CUSTOMER, CardRef, TopicState, TopicTracker, content_of

MAX_TEXT = 2000
HISTORY_LIMIT = 5
PARTIAL_INTERVAL_S = 1.0  # speech-to-text partials are looked at most this often per conversation
_DIGITS = re.compile(r"\d[\d\s-]{4,}\d")


@dataclass
class CardsUpdate:
    """The conversation's cards after a change (or not): what the API returns and the stream pushes."""

    conversation_id: str
    revision: int
    cards: list[Card]
    changed: bool
    event: str = "cards"  # cards | update (an entry changed) | pin | dismiss | closed
    coalesced: bool = False
    took_ms: float = 0.0


@dataclass(frozen=True)
class PastConversation:
    id: str
    channel: str
    opened_at: datetime
    closed_at: datetime | None
    topics: list[str]


@dataclass
class ConversationView:
    conversation: Conversation
    previous: list[PastConversation] = field(default_factory=list)
    utterances: list[Utterance] = field(default_factory=list)


class Coalescer:
    """Per-conversation serialisation, admission and partial coalescing, bounded (no queue ever grows).

    A final utterance waits for the conversation's lock, then for one of `lanes` places shared by all
    conversations: only that many utterances are worked on at once, the others wait their turn without
    taking the CPU. Most of an utterance's work holds Python's GIL, so letting every request run at once
    only makes them take turns in 5 ms slices — each finishes as late as the slowest; with few lanes
    they finish in the order they came (the 50-conversation benchmark on 2 cores: median push p95 0.72 s
    unbounded, 0.37 s with two lanes; docs/BENCHMARKS.md). A final that finds no lane within
    `wait_s` is refused as busy rather than queued for ever.
    A partial is looked at only if it brings topic words the last partial looked at did not, no sooner
    than PARTIAL_INTERVAL_S after it, while nothing else runs for the conversation and a lane is free;
    otherwise it is answered with the current cards — the next partial or the final one carries the
    newer text anyway. Partials are optional work: while any conversation's final utterance is being
    worked on (`finals_running`), they are not looked at."""

    def __init__(self, max_conversations: int = 10_000, *, lanes: int = 2, wait_s: float = 15.0) -> None:
        # id -> [lock, last partial time, its words, (revision, cards) last built]
        self._slots: OrderedDict[str, list] = OrderedDict()
        self._guard = threading.Lock()
        self.max = max_conversations
        self._finals = 0  # final utterances being worked on or waiting, all conversations
        self._lanes = threading.BoundedSemaphore(max(1, lanes))
        self.wait_s = wait_s

    def _slot(self, conversation_id: str) -> list:  # type: ignore[type-arg]
        with self._guard:
            slot = self._slots.pop(conversation_id, None) or [threading.Lock(), 0.0, (), None]
            self._slots[conversation_id] = slot
            while len(self._slots) > self.max:
                self._slots.popitem(last=False)
            return slot

    def cached(self, conversation_id: str, revision: int | None = None) -> list[Card] | None:
        """The cards last built for the conversation (at `revision`, if given)."""
        entry = self._slot(conversation_id)[3]
        if entry is None or (revision is not None and entry[0] != revision):
            return None
        return entry[1]

    def cached_revision(self, conversation_id: str) -> int | None:
        entry = self._slot(conversation_id)[3]
        return None if entry is None else entry[0]

    def remember(self, conversation_id: str, revision: int, cards: list[Card]) -> None:
        slot = self._slot(conversation_id)
        if slot[3] is None or slot[3][0] <= revision:
            slot[3] = (revision, cards)

    def finals_running(self) -> int:
        return self._finals

    @contextmanager
    def final(self, conversation_id: str) -> Iterator[bool]:
        slot = self._slot(conversation_id)
        with self._guard:
            self._finals += 1
        try:
            # Always the conversation's lock first, then a lane: a lane's holder never waits for a lock.
            with slot[0]:
                if not self._lanes.acquire(timeout=self.wait_s):
                    raise Unavailable("实时卡片服务繁忙，请稍后重试 live cards busy, retry",
                                      details={"conversation_id": conversation_id})
                try:
                    slot[2] = ()  # the next utterance starts afresh
                    yield True
                finally:
                    self._lanes.release()
        finally:
            with self._guard:
                self._finals -= 1

    @contextmanager
    def partial(self, conversation_id: str, words: tuple[str, ...]) -> Iterator[bool]:
        """Yields True when this partial should be looked at, False when it is coalesced away."""
        slot = self._slot(conversation_id)
        now = time.monotonic()
        stale = not words or words == slot[2] or now - slot[1] < PARTIAL_INTERVAL_S
        if stale or not slot[0].acquire(blocking=False):
            yield False
            return
        try:
            if not self._lanes.acquire(blocking=False):
                yield False
                return
            try:
                slot[1], slot[2] = now, words
                yield True
            finally:
                self._lanes.release()
        finally:
            slot[0].release()


def mask_digits(text: str) -> str:
    """Long digit runs (ID, card and phone numbers) keep only their last four digits in storage."""
    return _DIGITS.sub(lambda m: "*" * (len(re.sub(r"\D", "", m.group())) - 4) + re.sub(r"\D", "", m.group())[-4:], text)


# ------------------------------------------------------------------ conversations


def open_conversation(*, session: Session, actor: Actor, customer_id: str | None = None,
                      channel: str | None = None, agent: str | None = None) -> ConversationView:
    """A new conversation; the customer's earlier ones (any channel) come back as `previous`."""
    channel = (channel or Channel.PHONE).strip().lower()
    if channel not in {c.value for c in Channel}:
        raise ValidationFailed(f"未知渠道 unknown channel {channel!r}",
                               errors=[{"field": "channel", "message": f"allowed: {', '.join(c.value for c in Channel)}"}])
    customer_id = (customer_id or "").strip() or None
    row = Conversation(customer_id=customer_id, channel=channel, agent=(agent or actor.username)[:64],
                       opened_by=actor.username, state=TopicState().to_json())
    session.add(row)
    session.flush()
    audit.append(session=session, actor=actor.username, action="conversation.open", object_type="conversation",
                 object_id=row.id, detail={"customer_id": customer_id, "channel": channel})
    return ConversationView(row, previous=previous_conversations(session=session, conversation=row))


def get_conversation(*, session: Session, conversation_id: str) -> Conversation:
    row = session.get(Conversation, conversation_id)
    if row is None:
        raise NotFound(f"会话不存在 conversation {conversation_id!r} not found", details={"conversation_id": conversation_id})
    return row


def conversation_view(*, session: Session, conversation_id: str) -> ConversationView:
    """The conversation with its stored utterances and the customer's earlier conversations."""
    row = get_conversation(session=session, conversation_id=conversation_id)
    utterances = session.exec(select(Utterance).where(Utterance.conversation_id == row.id)
                              .order_by(col(Utterance.seq))).all()
    return ConversationView(row, previous_conversations(session=session, conversation=row), list(utterances))


def previous_conversations(*, session: Session, conversation: Conversation,
                           limit: int = HISTORY_LIMIT) -> list[PastConversation]:
    """The customer's earlier conversations on any channel, newest first, with the cards they were shown
    ("只说一次需求": the agent sees what was already discussed)."""
    if not conversation.customer_id:
        return []
    rows = session.exec(select(Conversation).where(Conversation.customer_id == conversation.customer_id,
                                                   Conversation.id != conversation.id)
                        .order_by(col(Conversation.opened_at).desc()).limit(limit)).all()
    past = []
    for row in rows:
        shown = session.exec(select(CardImpression.entry_id).where(CardImpression.conversation_id == row.id,
                                                                   CardImpression.action == "shown")
                             .order_by(col(CardImpression.id))).all()
        titles = []
        for entry_id in dict.fromkeys(shown):
            version = service.entry_as_of(session=session, entry_id=entry_id, at=row.closed_at or utcnow())
            titles.append(version.title if version else entry_id)
        past.append(PastConversation(row.id, row.channel, row.opened_at, row.closed_at, titles[:10]))
    return past


def close_conversation(*, session: Session, conversation_id: str, actor: Actor) -> Conversation:
    row = get_conversation(session=session, conversation_id=conversation_id)
    if row.closed_at is None:
        row.closed_at = utcnow()
        row.revision += 1
        session.add(row)
        audit.append(session=session, actor=actor.username, action="conversation.close", object_type="conversation",
                     object_id=row.id, detail={"turns": row.turns})
    return row


# ------------------------------------------------------------------ utterances and cards


def add_utterance(*, engine: Engine, tracker: TopicTracker, conversation_id: str, speaker: str, text: str,
                  final: bool = True, coalescer: Coalescer | None = None, notice_days: float = 7.0) -> CardsUpdate:
    """Feed one utterance to the conversation's topic tracker; store, log and return the cards.

    Runs its own short transactions: the conversation is read, the tracker searches with no
    database lock held, and the new state is written only if nobody else wrote it meanwhile."""
    started = time.perf_counter()
    speaker = {"c": CUSTOMER, "a": AGENT}.get(speaker.strip().lower(), speaker.strip().lower())
    if speaker not in (CUSTOMER, AGENT):
        raise ValidationFailed("speaker 须为 customer 或 agent", errors=[{"field": "speaker", "message": "customer | agent"}])
    if text is None or not text.strip():
        raise ValidationFailed("发言内容不能为空 text must not be empty", errors=[{"field": "text", "message": "empty"}])
    if len(text) > MAX_TEXT:
        raise ValidationFailed(f"单条发言不超过 {MAX_TEXT} 字 text longer than {MAX_TEXT}",
                               errors=[{"field": "text", "message": f"max {MAX_TEXT} characters"}])
    coalescer = coalescer or Coalescer()
    # A partial is optional work: while a final utterance (any conversation's) is being worked on or the
    # query encoder is busy, it waits for its own final utterance.
    busy = not final and (coalescer.finals_running() > 0 or bool(getattr(tracker.searcher.embedder, "busy", False)))
    words = () if final or busy else tuple(tracker.domain_terms(content_of(text)))
    gate = coalescer.final(conversation_id) if final else coalescer.partial(conversation_id, words)
    with gate as looked_at:
        if not final and not looked_at:
            return _coalesced(engine, coalescer, conversation_id, notice_days, started)
        for _ in range(5):
            with Session(read_only(engine), expire_on_commit=False) as session:
                row = get_conversation(session=session, conversation_id=conversation_id)
                _require_open(row)
                seen = (row.turns, row.revision)
                state = TopicState.from_json(row.state)
                session.expunge(row)  # keeps its loaded fields for the impressions below
                session.rollback()  # hold no lock while searching
            outcome = tracker.observe(state, speaker=speaker, text=text, final=final)
            revision = seen[1] + int(outcome.changed)
            if not final and not outcome.changed:  # a partial that moved nothing leaves nothing to store
                return _coalesced(engine, coalescer, conversation_id, notice_days, started, looked_at=True)
            # Cards are read before the write: the write lock (one writer at a time on SQLite) is held
            # only for the conversation's compare-and-set, the utterance and the impressions.
            cards = None if outcome.changed else coalescer.cached(conversation_id, revision)
            if cards is None:
                with Session(read_only(engine), expire_on_commit=False) as session:
                    cards = _cards(session, state.cards, notice_days)
            with session_scope(engine) as session:
                written = session.execute(
                    update(Conversation).where(col(Conversation.id) == conversation_id, col(Conversation.turns) == seen[0],
                                               col(Conversation.revision) == seen[1], col(Conversation.closed_at).is_(None))
                    .values(state=state.to_json(), turns=seen[0] + int(final), revision=revision)
                ).rowcount
                if not written:
                    session.rollback()
                    continue  # someone else wrote this conversation first: look again
                # Plain inserts, no unit of work: the write lock is held for as little Python as possible.
                if final:
                    session.execute(insert(Utterance).values(conversation_id=conversation_id, seq=seen[0] + 1,
                                                             speaker=speaker, text=mask_digits(text), ts=utcnow()))
                if outcome.changed:
                    _log_cards(session, row, cards, action="shown")
            coalescer.remember(conversation_id, revision, cards)
            return CardsUpdate(conversation_id, revision, cards, outcome.changed, "cards", False, _ms(started))
    raise Conflict("会话正被并发更新，请重试 conversation busy, retry", details={"conversation_id": conversation_id})


def _coalesced(engine: Engine, coalescer: Coalescer, conversation_id: str, notice_days: float,
               started: float, *, looked_at: bool = False) -> CardsUpdate:
    """The answer to a partial that changed nothing: the cards as they are (no search, rarely a query).
    `coalesced` tells the caller whether the partial was skipped unread."""
    revision = coalescer.cached_revision(conversation_id)
    cards = coalescer.cached(conversation_id, revision) if revision is not None else None
    if cards is None:
        with Session(read_only(engine)) as session:
            row = get_conversation(session=session, conversation_id=conversation_id)
            _require_open(row)
            revision, cards = row.revision, _cards(session, TopicState.from_json(row.state).cards, notice_days)
        coalescer.remember(conversation_id, revision, cards)
    return CardsUpdate(conversation_id, revision, cards, False, "cards", not looked_at, _ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def current_cards(*, session: Session, conversation_id: str, notice_days: float = 7.0) -> CardsUpdate:
    """The cards the sidebar shows now (versions in force now, change markers included)."""
    row = get_conversation(session=session, conversation_id=conversation_id)
    return _update(session, row, changed=False, notice_days=notice_days)


def pin_card(*, session: Session, conversation_id: str, entry_id: str, actor: Actor, pinned: bool = True,
             notice_days: float = 7.0) -> CardsUpdate:
    """Pin (keep whatever the topic does) or unpin a card."""
    row = get_conversation(session=session, conversation_id=conversation_id)
    _require_open(row)
    service.get_entry(session=session, entry_id=entry_id)
    state = TopicState.from_json(row.state)
    changed = TopicTracker.pin(state, entry_id) if pinned else TopicTracker.unpin(state, entry_id)
    return _agent_action(session, row, state, changed, entry_id, "pinned" if pinned else "unpinned", actor, notice_days)


def dismiss_card(*, session: Session, conversation_id: str, entry_id: str, actor: Actor,
                 notice_days: float = 7.0) -> CardsUpdate:
    """Remove a card; it is not pushed again in this conversation."""
    row = get_conversation(session=session, conversation_id=conversation_id)
    _require_open(row)
    state = TopicState.from_json(row.state)
    changed = TopicTracker.dismiss(state, entry_id)
    return _agent_action(session, row, state, changed, entry_id, "dismissed", actor, notice_days)


def refresh_changed_entries(*, session: Session, entry_ids: Iterable[str], notice_days: float = 7.0) -> list[CardsUpdate]:
    """Open conversations showing any of these entries get their cards again (new version, change notice)."""
    wanted = set(entry_ids)
    if not wanted:
        return []
    updates = []
    for row in session.exec(select(Conversation).where(col(Conversation.closed_at).is_(None))).all():
        refs = TopicState.from_json(row.state).card_ids
        if not wanted & set(refs):
            continue
        row.revision += 1
        session.add(row)
        update = _update(session, row, changed=True, notice_days=notice_days, event="update")
        _log_cards(session, row, [c for c in update.cards if c.entry_id in wanted], action="updated")
        updates.append(update)
    session.flush()
    return updates


def search_impressions(*, session: Session, customer_id: str | None = None, conversation_id: str | None = None,
                       agent: str | None = None, entry_id: str | None = None, since: datetime | None = None,
                       until: datetime | None = None, category: str | None = None, product_type: str | None = None,
                       channel: str | None = None, limit: int = 1000, offset: int = 0) -> tuple[list[CardImpression], int]:
    """Which card version was shown to whom, when, in which conversation — one query, newest first."""
    query = select(CardImpression)
    for column, value in ((CardImpression.customer_id, customer_id), (CardImpression.conversation_id, conversation_id),
                          (CardImpression.agent, agent), (CardImpression.entry_id, entry_id),
                          (CardImpression.product_type, product_type), (CardImpression.channel, channel)):
        if value:
            query = query.where(column == value)
    if category:
        query = query.where(CardImpression.category == Category.parse(category).value)
    if since:
        query = query.where(col(CardImpression.ts) >= to_utc(since))
    if until:
        query = query.where(col(CardImpression.ts) <= to_utc(until))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(CardImpression.ts).desc(), col(CardImpression.id).desc())
                        .offset(offset).limit(limit)).all()
    return list(rows), int(total)


class ChangeWatcher:
    """Which entries changed since the last look: change notices that took effect (a scheduled
    version when its time comes), each reported once. Notices older than the watcher are ignored."""

    def __init__(self, *, started: datetime | None = None, horizon: timedelta = timedelta(hours=24)) -> None:
        self.started = to_utc(started) or utcnow()
        self.horizon = horizon
        self._seen: dict[int, datetime] = {}

    def due(self, *, session: Session, now: datetime | None = None) -> list[str]:
        now = to_utc(now) or utcnow()
        start = max(self.started, now - self.horizon)
        fresh = [n for n in service.notices_since(session=session, since=start, until=now) if n.id not in self._seen]
        for notice in fresh:
            self._seen[notice.id or 0] = notice.effective_at
        self._seen = {i: t for i, t in self._seen.items() if to_utc(t) > start}
        return list(dict.fromkeys(n.entry_id for n in fresh))


# ------------------------------------------------------------------ internals


def _require_open(row: Conversation) -> None:
    if row.closed_at is not None:
        raise Conflict(f"会话已结束 conversation {row.id} is closed", details={"conversation_id": row.id})


def _cards(session: Session, refs: list[CardRef], notice_days: float) -> list[Card]:
    now = utcnow()
    cards = []
    for ref in refs:
        if session.get(Entry, ref.entry_id) is None:
            continue
        version = service.entry_as_of(session=session, entry_id=ref.entry_id, at=now)
        if version is None:  # retired since it was shown
            continue
        card = build_card(session=session, version=version, now=now, notice_days=notice_days)
        card.reasons = [ref.reason] + (["坐席已固定"] if ref.pinned and ref.reason != "坐席已固定" else [])
        cards.append(card)
    return cards


def _update(session: Session, row: Conversation, *, changed: bool, notice_days: float, event: str = "cards") -> CardsUpdate:
    refs = TopicState.from_json(row.state).cards
    return CardsUpdate(row.id, row.revision, _cards(session, refs, notice_days), changed, event)


def _agent_action(session: Session, row: Conversation, state: TopicState, changed: bool, entry_id: str,
                  action: str, actor: Actor, notice_days: float) -> CardsUpdate:
    if changed:
        row.revision += 1
    row.state = state.to_json()
    session.add(row)
    update = _update(session, row, changed=changed, notice_days=notice_days, event=action)
    version = service.entry_as_of(session=session, entry_id=entry_id)
    if changed and version is not None:
        session.add(CardImpression(conversation_id=row.id, customer_id=row.customer_id, channel=row.channel,
                                   agent=actor.username, entry_id=entry_id, version=version.number,
                                   category=version.category, product_type=version.product_type, action=action))
    session.flush()
    return update


def _log_cards(session: Session, row: Conversation, cards: list[Card], *, action: str) -> None:
    now = utcnow()
    if cards:
        session.execute(insert(CardImpression), [dict(
            ts=now, conversation_id=row.id, customer_id=row.customer_id, channel=row.channel, agent=row.agent,
            entry_id=card.entry_id, version=card.version, category=card.category, product_type=card.product_type,
            action=action, reason="；".join(card.reasons), changed=card.changed) for card in cards])

