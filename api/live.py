"""Live push of card changes to the agents' sidebars (WebSocket and SSE), within one server process.

Every event carries the whole card set and the conversation's revision, so a subscriber that falls
behind loses nothing by skipping to the newest event: queues are small and drop their oldest entry.
Subscribers also compare the stored revision once a second, which covers changes made by another
server process (`serve --workers N`) with at most that delay."""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from kb import metrics
from kb.db import read_only
from retrieval.cards import CHANGED_MESSAGE, Card
from retrieval import conversations as convo
from retrieval.conversations import CardsUpdate

if TYPE_CHECKING:
    from api.runtime import Runtime

QUEUE_SIZE = 8
HEARTBEAT_S = 15.0
POLL_S = 1.0  # while idle, compare the stored revision this often (changes from other processes)


def card_payload(card: Card) -> dict[str, Any]:
    """A card as JSON (the CardOut schema)."""
    data = asdict(card)
    data["facts"] = [{**asdict(f), "text": f.text} for f in card.facts]
    data["citation"] = {**asdict(card.citation), "text": card.citation.text}
    data["change_message"] = CHANGED_MESSAGE if card.changed else None
    data["attachments"] = [a.model_dump() for a in card.attachments]
    return data


def cards_payload(update: CardsUpdate) -> dict[str, Any]:
    """A card update as JSON (the CardsOut schema): what the API returns and the stream pushes."""
    return {
        "conversation_id": update.conversation_id, "revision": update.revision, "event": update.event,
        "changed": update.changed, "coalesced": update.coalesced, "took_ms": update.took_ms,
        "cards": [card_payload(c) for c in update.cards],
    }


def to_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, default=str)


class LiveHub:
    """Per-conversation fan-out to asyncio queues; `publish` may be called from any thread."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @asynccontextmanager
    async def subscribe(self, conversation_id: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.queue_size)
        with self._lock:
            self._subscribers.setdefault(conversation_id, set()).add(queue)
        try:
            yield queue
        finally:
            with self._lock:
                group = self._subscribers.get(conversation_id, set())
                group.discard(queue)
                if not group:
                    self._subscribers.pop(conversation_id, None)

    def subscribers(self, conversation_id: str) -> int:
        with self._lock:
            return len(self._subscribers.get(conversation_id, ()))

    def publish(self, update: CardsUpdate) -> None:
        """Push a changed card set to everyone watching the conversation (no-op when nobody is)."""
        if not update.changed or self._loop is None or not self.subscribers(update.conversation_id):
            return
        payload = cards_payload(update)
        metrics.CARD_PUSHES.labels(kind=update.event).inc()
        try:
            self._loop.call_soon_threadsafe(self._deliver, update.conversation_id, payload)
        except RuntimeError:  # the loop has closed (shutdown)
            pass

    def _deliver(self, conversation_id: str, payload: dict[str, Any]) -> None:
        with self._lock:
            queues = list(self._subscribers.get(conversation_id, ()))
        for queue in queues:
            if queue.full():  # a slow reader skips to the newest card set
                queue.get_nowait()
            queue.put_nowait(payload)


# ------------------------------------------------------------------ streams (WebSocket, SSE, web page)


def snapshot(runtime: Runtime, conversation_id: str) -> dict[str, Any]:
    with Session(read_only(runtime.engine)) as session:
        return cards_payload(convo.current_cards(session=session, conversation_id=conversation_id,
                                                 notice_days=runtime.settings.notice_days))


def current_revision(runtime: Runtime, conversation_id: str) -> tuple[int, bool]:
    with Session(read_only(runtime.engine)) as session:
        row = convo.get_conversation(session=session, conversation_id=conversation_id)
        return row.revision, row.closed_at is not None


async def conversation_events(runtime: Runtime, conversation_id: str) -> AsyncIterator[dict[str, Any]]:
    """The current card set first (a reconnect resumes from it), then every change; heartbeats as None."""
    async with runtime.live.subscribe(conversation_id) as queue:
        first = await run_in_threadpool(snapshot, runtime, conversation_id)
        first["event"] = "snapshot"
        sent = first["revision"]
        yield first
        idle = 0.0
        while True:
            try:
                payload = await asyncio.wait_for(queue.get(), timeout=POLL_S)
            except TimeoutError:
                idle += POLL_S
                revision, closed = await run_in_threadpool(current_revision, runtime, conversation_id)
                if revision > sent:  # changed by another server process
                    payload = await run_in_threadpool(snapshot, runtime, conversation_id)
                    payload["event"] = "closed" if closed else "cards"
                elif idle >= HEARTBEAT_S:
                    idle = 0.0
                    yield {"event": "heartbeat", "revision": sent}
                    continue
                else:
                    continue
            if payload["revision"] < sent:
                continue
            idle, sent = 0.0, payload["revision"]
            yield payload
            if payload.get("event") == "closed":
                return
