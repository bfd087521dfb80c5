"""Live push of card changes to the agents' sidebars (WebSocket and SSE), within one server process.

Every event carries the whole card set and the conversation's revision, so a subscriber that falls
behind loses nothing by skipping to the newest event: queues are small and drop their oldest entry.
Once a second one watcher per process reads the stored revisions of all watched conversations in one
query, which covers changes made by another server process (`serve --workers N`, `zhiku worker`)
with at most that delay."""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from kb import metrics
from kb.db import read_only
from retrieval.cards import CHANGED_MESSAGE, Card
from retrieval import conversations as convo
from retrieval.conversations import CardsUpdate
from retrieval.models import Conversation

if TYPE_CHECKING:
    from api.runtime import Runtime

log = logging.getLogger(__name__)
QUEUE_SIZE = 8
HEARTBEAT_S = 15.0
POLL_S = 1.0  # compare the stored revisions of watched conversations this often (changes from other processes)


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
        self._delivered: dict[str, int] = {}  # newest revision handed to the subscribers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._watcher: asyncio.Task[None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @asynccontextmanager
    async def subscribe(self, conversation_id: str, revision: int = 0) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.queue_size)
        with self._lock:
            self._subscribers.setdefault(conversation_id, set()).add(queue)
            self._delivered[conversation_id] = max(revision, self._delivered.get(conversation_id, 0))
        try:
            yield queue
        finally:
            with self._lock:
                group = self._subscribers.get(conversation_id, set())
                group.discard(queue)
                if not group:
                    self._subscribers.pop(conversation_id, None)
                    self._delivered.pop(conversation_id, None)

    def watch(self, runtime: Runtime) -> None:
        """Start the process's revision watcher (once; from the event loop)."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch(runtime), name="zhiku-live-watcher")

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    async def _watch(self, runtime: Runtime) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            with self._lock:
                watched = dict(self._delivered)
            if not watched:
                continue
            try:
                stored = await run_in_threadpool(stored_revisions, runtime, list(watched))
                for conversation_id, (revision, closed) in stored.items():
                    if revision > watched[conversation_id]:  # changed by another server process
                        payload = await run_in_threadpool(snapshot, runtime, conversation_id)
                        payload["event"] = "closed" if closed else "cards"
                        self._deliver(conversation_id, payload)
            except Exception:  # a database hiccup must not end the watcher; the next tick tries again
                log.exception("live watcher tick failed")

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
            if conversation_id in self._delivered:
                self._delivered[conversation_id] = max(self._delivered[conversation_id], payload["revision"])
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


def stored_revisions(runtime: Runtime, conversation_ids: list[str]) -> dict[str, tuple[int, bool]]:
    """Revision and closed flag of many conversations in one query."""
    with Session(read_only(runtime.engine)) as session:
        rows = session.exec(select(Conversation.id, Conversation.revision, Conversation.closed_at)
                            .where(col(Conversation.id).in_(conversation_ids))).all()
    return {cid: (revision, closed_at is not None) for cid, revision, closed_at in rows}


async def conversation_events(runtime: Runtime, conversation_id: str) -> AsyncIterator[dict[str, Any]]:
    """The current card set first (a reconnect resumes from it), then every change; heartbeats when idle."""
    first = await run_in_threadpool(snapshot, runtime, conversation_id)
    async with runtime.live.subscribe(conversation_id, first["revision"]) as queue:
        runtime.live.watch(runtime)
        # A change between the snapshot and the subscription is caught by the watcher's next tick.
        first["event"] = "snapshot"
        sent = first["revision"]
        yield first
        while True:
            try:
                payload = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_S)
            except TimeoutError:
                yield {"event": "heartbeat", "revision": sent}
                continue
            if payload["revision"] < sent:
                continue
            sent = payload["revision"]
            yield payload
            if payload.get("event") == "closed":
                return
