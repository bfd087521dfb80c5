"""Live conversations: utterances in, knowledge cards out — as responses, over WebSocket and over SSE."""
from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Auditors, Conversers, RuntimeDep, SessionDep, caller_for_credentials
from api.live import cards_payload, conversation_events, current_revision, to_json
from api.runtime import Runtime
from api.schemas import CardsOut, ConversationIn, ConversationOut, ImpressionOut, UtteranceIn, UtteranceOut
from api.errors import status_for
from kb.errors import ZhikuError
from retrieval import conversations as convo

router = APIRouter(tags=["conversations"])


def _conversation_out(view: convo.ConversationView) -> ConversationOut:
    row = view.conversation
    return ConversationOut(id=row.id, customer_id=row.customer_id, channel=row.channel, agent=row.agent,
                           opened_at=row.opened_at, closed_at=row.closed_at, turns=row.turns, revision=row.revision,
                           previous=[p.__dict__ for p in view.previous])


@router.post("/conversations", response_model=ConversationOut, status_code=201)
def open_conversation(body: ConversationIn, caller: Conversers, session: SessionDep) -> ConversationOut:
    """Open a conversation; the customer's earlier ones on any channel are linked ("只说一次需求")."""
    view = convo.open_conversation(session=session, actor=caller.actor, **body.model_dump())
    return _conversation_out(view)


@router.get("/conversations/{conversation_id}", response_model=ConversationOut)
def get_conversation(conversation_id: str, caller: Conversers, session: SessionDep) -> ConversationOut:
    """The conversation, with the customer's earlier conversations."""
    return _conversation_out(convo.conversation_view(session=session, conversation_id=conversation_id))


@router.get("/conversations/{conversation_id}/utterances", response_model=list[UtteranceOut])
def list_utterances(conversation_id: str, caller: Conversers, session: SessionDep) -> list[UtteranceOut]:
    """The final utterances stored so far (long digit runs masked)."""
    view = convo.conversation_view(session=session, conversation_id=conversation_id)
    return [UtteranceOut(seq=u.seq, speaker=u.speaker, text=u.text, ts=u.ts) for u in view.utterances]


@router.post("/conversations/{conversation_id}/utterances", response_model=CardsOut)
def add_utterance(conversation_id: str, body: UtteranceIn, caller: Conversers, runtime: RuntimeDep) -> dict[str, Any]:
    """One utterance (a final one, or a speech-to-text partial) → the cards and whether they changed."""
    update = convo.add_utterance(engine=runtime.engine, tracker=runtime.topic_tracker, conversation_id=conversation_id,
                                 speaker=body.speaker, text=body.text, final=body.final, coalescer=runtime.coalescer,
                                 notice_days=runtime.settings.notice_days)
    runtime.live.publish(update)
    return cards_payload(update)


@router.get("/conversations/{conversation_id}/cards", response_model=CardsOut)
def get_cards(conversation_id: str, caller: Conversers, runtime: RuntimeDep, session: SessionDep) -> dict[str, Any]:
    """The cards the sidebar shows now."""
    return cards_payload(convo.current_cards(session=session, conversation_id=conversation_id,
                                             notice_days=runtime.settings.notice_days))


@router.post("/conversations/{conversation_id}/cards/{entry_id}/pin", response_model=CardsOut)
def pin_card(conversation_id: str, entry_id: str, caller: Conversers, runtime: RuntimeDep, session: SessionDep,
             pinned: bool = True) -> dict[str, Any]:
    """Pin a card (kept whatever the topic does); `pinned=false` unpins it."""
    update = convo.pin_card(session=session, conversation_id=conversation_id, entry_id=entry_id, actor=caller.actor,
                            pinned=pinned, notice_days=runtime.settings.notice_days)
    session.info.setdefault("after_commit", []).append(lambda: runtime.live.publish(update))
    return cards_payload(update)


@router.post("/conversations/{conversation_id}/cards/{entry_id}/dismiss", response_model=CardsOut)
def dismiss_card(conversation_id: str, entry_id: str, caller: Conversers, runtime: RuntimeDep,
                 session: SessionDep) -> dict[str, Any]:
    """Dismiss a card: it is removed and not pushed again in this conversation."""
    update = convo.dismiss_card(session=session, conversation_id=conversation_id, entry_id=entry_id, actor=caller.actor,
                                notice_days=runtime.settings.notice_days)
    session.info.setdefault("after_commit", []).append(lambda: runtime.live.publish(update))
    return cards_payload(update)


@router.post("/conversations/{conversation_id}/close", response_model=ConversationOut)
def close_conversation(conversation_id: str, caller: Conversers, session: SessionDep) -> ConversationOut:
    """End the conversation: later utterances are refused (409)."""
    convo.close_conversation(session=session, conversation_id=conversation_id, actor=caller.actor)
    return _conversation_out(convo.conversation_view(session=session, conversation_id=conversation_id))


@router.get("/card-impressions", response_model=None)
def card_impressions(
    caller: Auditors, session: SessionDep, customer_id: str | None = None, conversation_id: str | None = None,
    agent: str | None = None, entry_id: str | None = None, category: str | None = None,
    product_type: str | None = None, channel: str | None = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None, to: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000, offset: Annotated[int, Query(ge=0)] = 0,
    format: Literal["json", "csv"] = "json",
) -> dict[str, Any] | Response:
    """Which card version was shown to which customer, by whom, when (by customer, time range, business type)."""
    rows, total = convo.search_impressions(session=session, customer_id=customer_id, conversation_id=conversation_id,
                                           agent=agent, entry_id=entry_id, since=from_, until=to, category=category,
                                           product_type=product_type, channel=channel, limit=limit, offset=offset)
    data = [ImpressionOut.model_validate(r, from_attributes=True) for r in rows]
    if format == "json":
        return {"data": [d.model_dump(mode="json") for d in data], "count": total}
    buffer = io.StringIO()
    fields = list(ImpressionOut.model_fields)
    writer = csv.writer(buffer)
    writer.writerow(fields)
    for d in data:
        writer.writerow([getattr(d, f) for f in fields])
    return Response("\ufeff" + buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="card-impressions.csv"'})


# ------------------------------------------------------------------ live push


@router.get("/conversations/{conversation_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream_sse(conversation_id: str, request: Request, caller: Conversers, runtime: RuntimeDep) -> StreamingResponse:
    """Server-sent events: `snapshot` first, then `cards` / `update` / `pin` / `dismiss` … with the whole card set."""
    await run_in_threadpool(current_revision, runtime, conversation_id)  # 404 before the stream starts

    async def body() -> AsyncIterator[str]:
        async for payload in conversation_events(runtime, conversation_id):
            if await request.is_disconnected():
                return
            yield f"id: {payload['revision']}\nevent: {payload['event']}\ndata: {to_json(payload)}\n\n"

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.websocket("/conversations/{conversation_id}/stream")
async def stream_ws(websocket: WebSocket, conversation_id: str) -> None:
    """WebSocket: the same events as SSE. Authenticate with `Authorization: Bearer …`, `?access_token=` or `X-API-Key`."""
    runtime: Runtime = websocket.app.state.runtime
    token = websocket.query_params.get("access_token")
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
    try:
        await run_in_threadpool(caller_for_credentials, websocket.app, token=token,
                                api_key=websocket.headers.get("x-api-key"), scope="conversations")
        await run_in_threadpool(current_revision, runtime, conversation_id)
    except ZhikuError as exc:  # 4000 + the HTTP status the same error would have had
        await websocket.close(code=4000 + status_for(exc), reason=exc.code)
        return
    await websocket.accept()
    events = conversation_events(runtime, conversation_id)
    try:
        async for payload in events:
            await websocket.send_text(to_json(payload))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        await events.aclose()
