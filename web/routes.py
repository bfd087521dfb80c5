"""The pages: each route parses, calls one service or view builder, and renders a template."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.background import BackgroundTask

from api.deps import RuntimeDep
from api.downloads import download_response
from api.live import conversation_events as live_events
from api.live import current_revision
from ingestion.parsers import Limits, write_template
from kb import audit, auth, users
from kb.errors import Unauthenticated, ValidationFailed
from kb.models import Role
from kb.timeutil import to_local, to_utc
from retrieval import conversations
from retrieval.logs import record_feedback
from review_workflow import attachments as draft_attachments
from review_workflow import service as workflow
from review_workflow.models import ApproveIn, PackState
from review_workflow.upload import pack_from_upload, preview_upload
from web import forms, messages, views
from web.dashboard import dashboard_view
from web.render import HOME, render, render_fragment
from web.security import (
    SESSION_COOKIE,
    Admins,
    Agents,
    Authors,
    Editors,
    Reviewers,
    WebSession,
    clear_session_cookie,
    csrf_protect,
    safe_next,
    set_session_cookie,
)

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])



def _redirect(url: str, msg: str | None = None) -> RedirectResponse:
    if msg:
        url += ("&" if "?" in url else "?") + urlencode({"msg": msg})
    return RedirectResponse(url, status_code=303)


def _htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


@router.get("/favicon.ico")
def favicon() -> Response:
    """No icon: answer browsers' automatic request without a 404 in their console."""
    return Response(status_code=204, headers={"Cache-Control": "max-age=86400"})


# ---------------------------------------------------------------- sign-in


@router.get("/")
def home(request: Request, session: WebSession) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        try:
            actor = auth.actor_for_token(session=session, token=token)
            return _redirect(HOME.get(actor.role, "/agent"))
        except Unauthenticated:
            pass
    return _redirect("/login")


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": safe_next(next), "error": None, "username": ""})


@router.post("/login")
def login(request: Request, session: WebSession, username: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=200)], next: Annotated[str, Form()] = "/") -> Response:
    """Sign in with the API's token login; the token lives in an HttpOnly, SameSite=Strict cookie."""
    try:
        token, user, ttl = auth.login(session=session, username=username.strip(), password=password)
    except Unauthenticated as exc:
        locked = exc.details.get("locked_until")
        if locked:
            error = messages.LOGIN_LOCKED.format(until=f"{to_local(to_utc(locked)):%H:%M}")  # type: ignore[arg-type]
        elif "disabled" in exc.message:
            error = messages.LOGIN_DISABLED
        else:
            error = messages.LOGIN_WRONG
        return render(request, "login.html", {"next": safe_next(next), "error": error, "username": username},
                      status_code=401)
    target = safe_next(next)
    response = _redirect(HOME.get(user.role, "/agent") if target == "/" else target)
    set_session_cookie(response, request, token, ttl)
    return response


@router.post("/logout")
def logout(request: Request, session: WebSession) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        auth.logout(session=session, token=token)
    response = _redirect("/login", "logged_out")
    clear_session_cookie(response)
    return response


# ---------------------------------------------------------------- agent


@router.get("/agent")
def agent_workspace(request: Request, user: Agents, runtime: RuntimeDep, session: WebSession,
                    q: Annotated[str, Query(max_length=512)] = "", category: str = "", product_type: str = "",
                    conversation: Annotated[str, Query(max_length=64)] = "") -> Response:
    """The agent workspace: instant search, the selected card, and the conversation panel."""
    results = views.search_view(runtime=runtime, session=session, actor=user.actor, query=q, category=category,
                                product_type=product_type)
    first = views.card_view(runtime=runtime, session=session, entry_id=results.hits[0].entry_id) if results.hits else None
    panel = views.conversation_panel(runtime=runtime, session=session, conversation_id=conversation) if conversation else None
    return render(request, "agent/workspace.html", {"results": results, "card": first, "panel": panel,
                                                    "channels": messages.CHANNELS})


@router.post("/agent/conversations")
def start_conversation(user: Agents, session: WebSession, customer_id: Annotated[str, Form(max_length=64)] = "",
                       channel: Annotated[str, Form(max_length=20)] = "phone") -> Response:
    """Open a conversation (the customer's earlier ones are linked) and show its panel."""
    view = conversations.open_conversation(session=session, actor=user.actor, customer_id=customer_id or None,
                                           channel=channel)
    return _redirect(f"/agent?conversation={view.conversation.id}#conversation-panel")


@router.post("/agent/conversations/{conversation_id}/utterances")
def conversation_utterance(request: Request, conversation_id: str, user: Agents, runtime: RuntimeDep,
                           speaker: Annotated[str, Form(max_length=10)], text: Annotated[str, Form(max_length=2000)]) -> Response:
    """A typed customer or agent turn; the cards follow (and are pushed to every open sidebar)."""
    update = conversations.add_utterance(engine=runtime.engine, tracker=runtime.topic_tracker,
                                         conversation_id=conversation_id, speaker=speaker, text=text,
                                         coalescer=runtime.coalescer, notice_days=runtime.settings.notice_days)
    runtime.live.publish(update)
    if not _htmx(request):
        return _redirect(f"/agent?conversation={conversation_id}#conversation-panel")
    return render(request, "agent/utterance_added.html", {"speaker": speaker, "text": conversations.mask_digits(text),
                                                          "live": update})


@router.post("/agent/conversations/{conversation_id}/cards/{entry_id}/{action}")
def conversation_card_action(request: Request, conversation_id: str, entry_id: str, action: str, user: Agents,
                             runtime: RuntimeDep, session: WebSession) -> Response:
    """Pin, unpin or dismiss a live card."""
    days = runtime.settings.notice_days
    if action == "dismiss":
        update = conversations.dismiss_card(session=session, conversation_id=conversation_id, entry_id=entry_id,
                                            actor=user.actor, notice_days=days)
    elif action in ("pin", "unpin"):
        update = conversations.pin_card(session=session, conversation_id=conversation_id, entry_id=entry_id,
                                        actor=user.actor, pinned=action == "pin", notice_days=days)
    else:
        raise ValidationFailed("未知操作 unknown action", errors=[{"field": "action", "message": "pin | unpin | dismiss"}])
    session.commit()
    runtime.live.publish(update)
    if not _htmx(request):
        return _redirect(f"/agent?conversation={conversation_id}#conversation-panel")
    return render(request, "partials/live_cards.html", {"live": update})


@router.post("/agent/conversations/{conversation_id}/close")
def close_conversation(conversation_id: str, user: Agents, session: WebSession) -> Response:
    conversations.close_conversation(session=session, conversation_id=conversation_id, actor=user.actor)
    return _redirect("/agent", "conversation_closed")


@router.get("/agent/conversations/{conversation_id}/events")
async def conversation_events(request: Request, conversation_id: str, user: Agents, runtime: RuntimeDep) -> Response:
    """Server-sent events for the panel: each card change as the HTML of the live cards."""
    await run_in_threadpool(current_revision, runtime, conversation_id)  # 404 before the stream starts

    async def body():  # type: ignore[no-untyped-def]
        async for payload in live_events(runtime, conversation_id):
            if await request.is_disconnected():
                return
            if payload["event"] == "heartbeat":
                yield ": heartbeat\n\n"
                continue
            update = await run_in_threadpool(views.live_cards, runtime=runtime, conversation_id=conversation_id)
            html = render_fragment(request, "partials/live_cards.html", {"live": update})
            data = "".join(f"data: {line}\n" for line in html.splitlines())
            yield f"id: {payload['revision']}\nevent: cards\n{data}\n"

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/agent/search")
def agent_search(request: Request, user: Agents, runtime: RuntimeDep, session: WebSession,
                 q: Annotated[str, Query(max_length=512)] = "", category: str = "", product_type: str = "") -> Response:
    """Search results as you type (an htmx partial; a plain request gets the whole workspace)."""
    if not _htmx(request):
        return _redirect("/agent?" + urlencode({"q": q, "category": category, "product_type": product_type}))
    results = views.search_view(runtime=runtime, session=session, actor=user.actor, query=q, category=category,
                                product_type=product_type)
    # The top hit's card replaces the card pane too (an out-of-band swap), so typing is enough.
    first = views.card_view(runtime=runtime, session=session, entry_id=results.hits[0].entry_id) if results.hits else None
    return render(request, "partials/search_results.html", {"results": results, **({"oob_card": first} if first else {})})


@router.get("/agent/cards/{entry_id}")
def agent_card(request: Request, entry_id: str, user: Agents, runtime: RuntimeDep, session: WebSession,
               q: Annotated[str, Query(max_length=512)] = "") -> Response:
    if not _htmx(request):
        return _redirect(f"/entries/{entry_id}")
    card = views.card_view(runtime=runtime, session=session, entry_id=entry_id)
    return render(request, "partials/card.html", {"card": card, "query": q, "conversation_id": None})


@router.post("/agent/feedback")
def agent_feedback(request: Request, user: Agents, session: WebSession, entry_id: Annotated[str, Form()],
                   version: Annotated[int, Form()], useful: Annotated[str, Form()],
                   query: Annotated[str, Form(max_length=2000)] = "", conversation_id: Annotated[str, Form()] = "") -> Response:
    """👍/👎 on a card (retrieval.logs.record_feedback, like POST /api/v1/feedback)."""
    record_feedback(session=session, actor=user.username, entry_id=entry_id, version=version, useful=useful == "1",
                    query=query or None, conversation_id=conversation_id or None)
    if _htmx(request):
        return render(request, "partials/feedback_done.html", {"useful": useful == "1"})
    return _redirect(f"/entries/{entry_id}")


@router.get("/entries/{entry_id}")
def entry_page(request: Request, entry_id: str, user: Agents, runtime: RuntimeDep, session: WebSession,
               from_: Annotated[int | None, Query(alias="from", ge=1)] = None,
               to: Annotated[int | None, Query(ge=1)] = None) -> Response:
    """One entry: the version in force as rendered Markdown, its card, version history and a diff."""
    view = views.entry_view(runtime=runtime, session=session, actor=user.actor, entry_id=entry_id,
                            from_version=from_, to_version=to)
    return render(request, "entry.html", {"view": view})


# ---------------------------------------------------------------- expert


@router.get("/expert/packs")
def my_packs(request: Request, user: Authors, session: WebSession, state: str = "") -> Response:
    """Your packs (an admin sees everyone's), newest first, with their state and SLA due time."""
    mine = None if user.role == Role.ADMIN else user.username
    packs = workflow.list_packs(session=session, state=state or None, submitter=mine)
    return render(request, "expert/packs.html", {"rows": views.pack_rows(session=session, packs=packs), "state": state,
                                                 "mine": mine is not None})


@router.get("/expert/packs/new")
def new_pack(request: Request, user: Authors, session: WebSession, op: str = "create", entry_id: str = "",
             pack_id: str = "") -> Response:
    """The pack form: add an entry, edit one (its latest version prefilled) or retire one."""
    values = views.prefill(session=session, entry_id=entry_id) if entry_id and op in ("update", "retire") else {}
    pack = workflow.get_pack(session=session, pack_id=pack_id) if pack_id else None
    return render(request, "expert/pack_form.html", {"op": op if op in ("create", "update", "retire") else "create",
                                                     "values": values, "pack": pack})


@router.post("/expert/packs")
async def create_pack(request: Request, user: Authors, session: WebSession) -> Response:
    """Create a draft pack with one item, or add the item to an existing draft (`pack_id`)."""
    form = await request.form()
    item = forms.item_from_form(form)
    pack_id = forms.text(form, "pack_id")
    if pack_id:
        pack = workflow.add_pack_item(session=session, pack_id=pack_id, item=item, actor=user.actor)
        return _redirect(f"/packs/{pack.id}", "item_added")
    title = forms.text(form, "pack_title") or f"{messages.OP_LABELS.get(item['op'], '')}：{item.get('title') or item.get('entry_id') or ''}"
    pack = workflow.create_pack(session=session, data={"title": title, "items": [item]}, actor=user.actor)
    return _redirect(f"/packs/{pack.id}", "created")


@router.get("/expert/upload")
def upload_page(request: Request, user: Authors) -> Response:
    return render(request, "expert/upload.html", {"preview": None, "filename": None})


@router.post("/expert/upload")
async def upload(request: Request, user: Authors, runtime: RuntimeDep, session: WebSession,
                 file: Annotated[UploadFile, File()], title: Annotated[str, Form(max_length=200)] = "",
                 action: Annotated[str, Form()] = "preview") -> Response:
    """Preview a pack file (diffs, lint, errors by file / sheet / row), or save it as a draft — the
    same review_workflow.upload services as POST /api/v1/packs/upload."""
    limits = Limits(max_upload_bytes=runtime.settings.upload_max_bytes)
    data = await file.read(limits.max_upload_bytes + 1)
    filename = file.filename or "upload"
    if action == "save":
        pack, _ = pack_from_upload(session=session, filename=filename, data=data, title=title or None,
                                   actor=user.actor, limits=limits, data_dir=runtime.settings.resolved_data_dir)
        return _redirect(f"/packs/{pack.id}", "created")
    preview, _ = preview_upload(session=session, filename=filename, data=data, limits=limits)
    template = "partials/upload_preview.html" if _htmx(request) else "expert/upload.html"
    return render(request, template, {"preview": preview, "filename": filename})


@router.get("/expert/template.xlsx")
def pack_template(user: Authors) -> Response:
    """The XLSX update-pack template (same file as `zhiku pack template`)."""
    folder = Path(tempfile.mkdtemp(prefix="zhiku-template-"))
    path = write_template(folder / "知库更新包模板.xlsx")

    def cleanup() -> None:
        path.unlink(missing_ok=True)
        folder.rmdir()

    return FileResponse(path, filename="知库更新包模板.xlsx", background=BackgroundTask(cleanup),
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


# ---------------------------------------------------------------- one pack (expert, reviewer, admin)


@router.get("/packs/{pack_id}")
def pack_page(request: Request, pack_id: str, user: Editors, session: WebSession) -> Response:
    """A pack: items with side-by-side diffs and lint findings at their spans; actions for this user."""
    return render(request, "pack.html", {"view": views.pack_view(session=session, actor=user.actor, pack_id=pack_id)})


@router.post("/packs/{pack_id}/submit")
def submit(pack_id: str, user: Authors, runtime: RuntimeDep, session: WebSession) -> Response:
    workflow.submit_pack(session=session, pack_id=pack_id, actor=user.actor, sla_hours=runtime.settings.sla_hours)
    return _redirect(f"/packs/{pack_id}", "submitted")


@router.post("/packs/{pack_id}/withdraw")
def withdraw(pack_id: str, user: Authors, session: WebSession) -> Response:
    workflow.withdraw_pack(session=session, pack_id=pack_id, actor=user.actor)
    return _redirect(f"/packs/{pack_id}", "withdrawn")


@router.post("/packs/{pack_id}/revise")
def revise(pack_id: str, user: Authors, session: WebSession) -> Response:
    workflow.revise_pack(session=session, pack_id=pack_id, actor=user.actor)
    return _redirect(f"/packs/{pack_id}", "revised")


@router.post("/packs/{pack_id}/attachments")
async def add_attachment(pack_id: str, user: Authors, runtime: RuntimeDep, session: WebSession,
                         file: Annotated[UploadFile | None, File()] = None, url: Annotated[str, Form()] = "",
                         title: Annotated[str, Form(max_length=200)] = "", position: Annotated[str, Form()] = "") -> Response:
    """Attach a file or a link to your draft (the same service as POST /api/v1/packs/{id}/attachments)."""
    limit = runtime.settings.upload_max_bytes
    content = await file.read(limit + 1) if file is not None and file.filename else None
    where = int(position) if position.strip().isdigit() else None
    draft_attachments.add_attachment(session=session, pack_id=pack_id, actor=user.actor,
                                     data_dir=runtime.settings.resolved_data_dir,
                                     filename=file.filename if content is not None and file is not None else None,
                                     content=content, url=url.strip() or None, title=title.strip() or None,
                                     position=where, max_bytes=limit)
    return _redirect(f"/packs/{pack_id}", "attachment_added")


@router.post("/packs/{pack_id}/attachments/{attachment_id}/delete")
def remove_attachment(pack_id: str, attachment_id: str, user: Authors, session: WebSession) -> Response:
    draft_attachments.remove_attachment(session=session, pack_id=pack_id, attachment_id=attachment_id, actor=user.actor)
    return _redirect(f"/packs/{pack_id}", "attachment_removed")


@router.get("/attachments/{attachment_id}")
def download_attachment(attachment_id: str, user: Agents, runtime: RuntimeDep, session: WebSession) -> Response:
    """A card's or a pack's attachment for any signed-in staff member (as GET /api/v1/attachments/{id})."""
    return download_response(session=session, root=runtime.settings.resolved_data_dir, attachment_id=attachment_id)


@router.post("/packs/{pack_id}/items/{position}/delete")
def remove_item(pack_id: str, position: int, user: Authors, session: WebSession) -> Response:
    workflow.remove_pack_item(session=session, pack_id=pack_id, position=position, actor=user.actor)
    return _redirect(f"/packs/{pack_id}", "item_removed")


@router.post("/packs/{pack_id}/approve")
def approve(pack_id: str, user: Reviewers, session: WebSession, revision: Annotated[int | None, Form()] = None,
            comment: Annotated[str, Form(max_length=2000)] = "", effective_at: Annotated[str, Form()] = "",
            override_reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Approve (four eyes enforced by the service); an effective time in the future schedules it."""
    data = ApproveIn(comment=comment, effective_at=effective_at or None, override_reason=override_reason or None,
                     revision=revision)
    pack = workflow.approve_pack(session=session, pack_id=pack_id, data=data, actor=user.actor)
    return _redirect(f"/packs/{pack_id}", "scheduled" if pack.state == PackState.SCHEDULED else "approved")


@router.post("/packs/{pack_id}/reject")
def reject(pack_id: str, user: Reviewers, session: WebSession, comment: Annotated[str, Form(max_length=2000)] = "") -> Response:
    workflow.reject_pack(session=session, pack_id=pack_id, comment=comment, actor=user.actor)
    return _redirect(f"/packs/{pack_id}", "rejected")


@router.post("/packs/{pack_id}/publish")
def publish_now(pack_id: str, user: Admins, session: WebSession) -> Response:
    workflow.publish_now(session=session, pack_id=pack_id, actor=user.actor)
    return _redirect(f"/packs/{pack_id}", "published")


# ---------------------------------------------------------------- reviewer


@router.get("/review")
def review_queue(request: Request, user: Reviewers, session: WebSession) -> Response:
    """Packs waiting for review: overdue first (highlighted), then by SLA due time."""
    rows = views.pack_rows(session=session, packs=workflow.review_queue(session=session))
    return render(request, "reviewer/queue.html", {"rows": rows})


# ---------------------------------------------------------------- admin


@router.get("/admin")
def dashboard(request: Request, user: Admins, runtime: RuntimeDep, session: WebSession) -> Response:
    return render(request, "admin/dashboard.html", {"view": dashboard_view(session=session, settings=runtime.settings)})


@router.get("/admin/users")
def users_page(request: Request, user: Admins, session: WebSession) -> Response:
    """Users grouped by department."""
    everyone = users.list_users(session=session)
    departments: dict[str, list] = {}
    for account in everyone:
        departments.setdefault(account.department or "（未分配部门）", []).append(account)
    return render(request, "admin/users.html", {"departments": departments, "count": len(everyone),
                                                "created": request.query_params.get("created")})


@router.post("/admin/users")
def create_user(request: Request, user: Admins, session: WebSession, username: Annotated[str, Form(max_length=64)],
                password: Annotated[str, Form(max_length=200)], role: Annotated[str, Form()],
                department: Annotated[str, Form(max_length=100)] = "",
                display_name: Annotated[str, Form(max_length=100)] = "") -> Response:
    created = users.create_user(session=session, username=username, password=password, role=role, actor=user.username,
                                department=department.strip() or None, display_name=display_name.strip())
    return _redirect("/admin/users?" + urlencode({"created": created.username}))


@router.get("/admin/keys")
def keys_page(request: Request, user: Admins, session: WebSession) -> Response:
    return render(request, "admin/keys.html", {"keys": auth.list_api_keys(session=session), "new_key": None,
                                               "scopes": auth.SCOPES})


@router.post("/admin/keys")
async def create_key(request: Request, user: Admins, session: WebSession) -> Response:
    """Create a key for a bot; the key is shown once, on this page."""
    form = await request.form()
    rate = forms.text(form, "rate_per_minute") or "120"
    key, _ = auth.create_api_key(session=session, name=forms.text(form, "name"),
                                 scopes=[s for s in form.getlist("scopes") if isinstance(s, str)], actor=user.actor,
                                 rate_per_minute=int(rate) if rate.isdigit() else 0)
    return render(request, "admin/keys.html", {"keys": auth.list_api_keys(session=session), "new_key": key,
                                               "scopes": auth.SCOPES}, status_code=201)


@router.post("/admin/keys/{key_id}/revoke")
def revoke_key(key_id: int, user: Admins, session: WebSession) -> Response:
    auth.revoke_api_key(session=session, key_id=key_id, actor=user.actor)
    return _redirect("/admin/keys", "key_revoked")


def _audit_filters(entry_id: str, actor: str, action: str, from_: str, to: str) -> dict[str, object]:
    try:
        since, until = to_utc(from_ or None), to_utc(to or None)
    except ValueError:
        raise ValidationFailed("时间格式有误", errors=[{"field": "from", "message": "须为 YYYY-MM-DD 或 YYYY-MM-DDTHH:MM"}]) from None
    return {"entry_id": entry_id.strip() or None, "actor": actor.strip() or None, "action": action.strip() or None,
            "since": since, "until": until}


@router.get("/admin/audit")
def audit_page(request: Request, user: Reviewers, session: WebSession, entry_id: str = "", actor: str = "",
               action: str = "", from_: Annotated[str, Query(alias="from")] = "", to: str = "") -> Response:
    """Search the audit log (newest last), export it as CSV, verify the hash chain."""
    filters = _audit_filters(entry_id, actor, action, from_, to)
    events = audit.search_events(session=session, limit=500, **filters)  # type: ignore[arg-type]
    query = urlencode({"entry_id": entry_id, "actor": actor, "action": action, "from": from_, "to": to})
    return render(request, "admin/audit.html", {"events": events, "filters": {"entry_id": entry_id, "actor": actor,
                  "action": action, "from": from_, "to": to}, "csv_query": query, "report": None})


@router.get("/admin/audit.csv")
def audit_csv(user: Reviewers, session: WebSession, entry_id: str = "", actor: str = "", action: str = "",
              from_: Annotated[str, Query(alias="from")] = "", to: str = "") -> Response:
    events = audit.search_events(session=session, **_audit_filters(entry_id, actor, action, from_, to))  # type: ignore[arg-type]
    return Response(audit.events_csv(events), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="zhiku-audit.csv"'})


@router.post("/admin/audit/verify")
def audit_verify(request: Request, user: Reviewers, session: WebSession) -> Response:
    """Recompute the whole hash chain and show the result."""
    report = audit.verify(session=session)
    if _htmx(request):
        return render(request, "partials/chain_report.html", {"report": report})
    events = audit.search_events(session=session, limit=500)
    return render(request, "admin/audit.html", {"events": events, "filters": {"entry_id": "", "actor": "", "action": "",
                  "from": "", "to": ""}, "csv_query": "", "report": report})
