"""Update packs from draft to published: who may do what, lint on submit and approval, four eyes,
writing the versions (the outbox rows ride in the same transaction), scheduling, rollback, SLA."""
from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, col, select

from kb import attachments as kb_attachments
from kb import audit, metrics
from kb import service as kb_service
from kb.errors import Conflict, InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from kb.models import ENTRY_FIELDS, Actor, Entry, EntryCreate, EntryVersion, Role, VersionContent
from kb.timeutil import to_utc, utcnow
from review_workflow import lint
from review_workflow.machine import fire
from review_workflow.models import (
    ApproveIn,
    Escalation,
    ItemOp,
    PackIn,
    PackItem,
    PackItemPublic,
    PackPublic,
    PackState,
    Review,
    ReviewPublic,
    UpdatePack,
)

DEFAULT_SLA_HOURS = 24


# ---------------------------------------------------------------- reads


def get_pack(*, session: Session, pack_id: str) -> UpdatePack:
    pack = session.get(UpdatePack, pack_id)
    if pack is None:
        raise NotFound(f"更新包不存在 pack {pack_id!r} not found", details={"pack_id": pack_id})
    return pack


def pack_items(*, session: Session, pack_id: str) -> list[PackItem]:
    return list(session.exec(select(PackItem).where(PackItem.pack_id == pack_id).order_by(col(PackItem.position))).all())


def to_public(*, session: Session, pack: UpdatePack, now: datetime | None = None) -> PackPublic:
    """A pack with its items, all their findings and its reviews."""
    now = now or utcnow()
    items = pack_items(session=session, pack_id=pack.id)
    reviews = session.exec(select(Review).where(Review.pack_id == pack.id).order_by(col(Review.id))).all()
    return PackPublic(
        **pack.model_dump(exclude={"updated_at", "escalated_at"}),
        overdue=is_overdue(pack, now),
        items=[PackItemPublic.model_validate(i, from_attributes=True) for i in items],
        findings=[{**f, "position": i.position} for i in items for f in i.findings],
        reviews=[ReviewPublic.model_validate(r, from_attributes=True) for r in reviews],
        attachments=kb_attachments.for_pack(session=session, pack_id=pack.id),
    )


def list_packs(*, session: Session, state: str | None = None, submitter: str | None = None) -> list[UpdatePack]:
    query = select(UpdatePack)
    if state:
        query = query.where(UpdatePack.state == state)
    if submitter:
        query = query.where(UpdatePack.submitter == submitter)
    return list(session.exec(query.order_by(col(UpdatePack.created_at).desc())).all())


def is_overdue(pack: UpdatePack, now: datetime) -> bool:
    return pack.state == PackState.SUBMITTED and pack.sla_due_at is not None and pack.sla_due_at <= now


def review_queue(*, session: Session, now: datetime | None = None) -> list[UpdatePack]:
    """Packs waiting for review: overdue first, then by SLA due time."""
    now = now or utcnow()
    packs = list_packs(session=session, state=PackState.SUBMITTED)
    return sorted(packs, key=lambda p: (not is_overdue(p, now), p.sla_due_at or now))


# ---------------------------------------------------------------- items: validate and lint


def _check_item(session: Session, position: int, op: ItemOp, entry_id: str | None, base_version: int | None,
                fields: dict[str, Any], known: dict[str, Entry] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate one item against the knowledge base; returns (stored data, lint findings). `known`: the
    entries the pack names, read in one query (an id missing from it does not exist)."""
    where = f"第 {position + 1} 项 item {position + 1}"
    if op == ItemOp.RETIRE:
        entry = _existing(session, entry_id, where, known)
        if entry.status == "retired":
            raise Conflict(f"{where}: 条目已下线 entry {entry_id!r} is already retired", details={"position": position})
        return {"reason": str(fields.get("reason", ""))}, []
    model = EntryCreate if op == ItemOp.CREATE else VersionContent
    data = dict(fields)
    if op == ItemOp.CREATE and entry_id:
        data["id"] = entry_id
    if op == ItemOp.UPDATE:
        entry = _existing(session, entry_id, where, known)
        if base_version is not None and base_version > entry.latest_version:
            raise ValidationFailed(f"{where}: 基准版本 {base_version} 不存在 base_version does not exist",
                                   errors=[{"field": "base_version", "message": "unknown version", "position": position}])
        data = {k: v for k, v in data.items() if k not in ENTRY_FIELDS}
    try:
        content = model.model_validate(data)
    except ValidationError as exc:
        errors = [{"field": str(e["loc"][0]) if e["loc"] else "item", "message": e["msg"].removeprefix("Value error, "),
                   "position": position} for e in exc.errors()]
        raise ValidationFailed(f"{where}: 输入无效 invalid: " + ", ".join(dict.fromkeys(e["field"] for e in errors)),
                               errors=errors) from None
    if op == ItemOp.CREATE and content.id and _lookup(session, content.id, known) is not None:
        raise Conflict(f"{where}: 条目编号已存在 entry {content.id!r} already exists", details={"position": position})
    stored = content.model_dump(mode="json", exclude_none=False)
    for key in ("valid_from", "valid_to"):
        if key not in fields or fields.get(key) in (None, ""):
            stored[key] = None
    findings = _counted([asdict(f) for f in lint.lint_content(stored)])
    return stored, findings


def _lookup(session: Session, entry_id: str, known: dict[str, Entry] | None) -> Entry | None:
    return known.get(entry_id) if known is not None else session.get(Entry, entry_id)


def _existing(session: Session, entry_id: str | None, where: str, known: dict[str, Entry] | None = None) -> Entry:
    entry = _lookup(session, entry_id, known) if entry_id else None
    if entry is None:
        raise NotFound(f"{where}: 条目不存在 entry {entry_id!r} not found", details={"entry_id": entry_id})
    return entry


def _write_items(session: Session, pack: UpdatePack, data: PackIn) -> None:
    for old in pack_items(session=session, pack_id=pack.id):
        session.delete(old)
    session.flush()
    # One query for every entry the pack names, and no flush per item: a 10k-row file stays fast.
    ids = {i.entry_id or str(i.fields().get("id") or "") for i in data.items} - {""}
    known = {e.id: e for e in session.exec(select(Entry).where(col(Entry.id).in_(ids))).all()} if ids else {}
    with session.no_autoflush:
        for position, item in enumerate(data.items):
            stored, findings = _check_item(session, position, item.op, item.entry_id, item.base_version, item.fields(),
                                           known)
            session.add(PackItem(pack_id=pack.id, position=position, op=item.op.value,
                                 entry_id=item.entry_id or stored.get("id"), base_version=item.base_version,
                                 data=stored, findings=findings))
    session.flush()


def _parse(data: PackIn | Mapping[str, Any]) -> PackIn:
    if isinstance(data, PackIn):
        return data
    try:
        return PackIn.model_validate(dict(data))
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            message = e["msg"].removeprefix("Value error, ")
            loc = [str(p) for p in e["loc"]]
            named = message.split(":", 1)[0]
            if named.isidentifier():  # a model-level check names its field first ("base_version: …")
                loc.append(named)
            errors.append({"field": ".".join(loc), "message": message})
        raise ValidationFailed("更新包无效 invalid pack: " + ", ".join(e["field"] for e in errors), errors=errors) from None


def _pack_hash(session: Session, pack: UpdatePack) -> str:
    return audit.content_hash([(i.op, i.entry_id, i.base_version, i.data) for i in pack_items(session=session, pack_id=pack.id)])


def _require(actor: Actor, *roles: Role, action: str) -> None:
    if not actor.has(*roles):
        raise PermissionDenied(f"无权限：{action} 需要角色 {'/'.join(r.value for r in roles)} — {actor.username} is {actor.role}",
                               details={"action": action, "role": actor.role})


def _own(pack: UpdatePack, actor: Actor, action: str, *, message: str | None = None) -> None:
    if pack.submitter != actor.username:
        raise PermissionDenied(message or f"只能{action}自己的更新包 only the submitter may {action} this pack",
                               details={"pack_id": pack.id, "submitter": pack.submitter})


def own_draft(*, session: Session, pack_id: str, actor: Actor, not_yours: str, not_draft: str) -> UpdatePack:
    """The pack, if it is `actor`'s draft: PermissionDenied (`not_yours`) for anyone else's, InvalidTransition
    (`not_draft`, formatted with `state`) once it has left the draft state."""
    pack = get_pack(session=session, pack_id=pack_id)
    _own(pack, actor, "change", message=not_yours)
    if pack.state != PackState.DRAFT:
        raise InvalidTransition(not_draft.format(state=pack.state), details={"pack_id": pack.id, "state": pack.state})
    return pack


def _audit(session: Session, pack: UpdatePack, actor: Actor, action: str, **detail: Any) -> None:
    audit.append(session=session, actor=actor.username, action=f"pack.{action}", object_type="pack", object_id=pack.id,
                 after_hash=_pack_hash(session, pack), detail={"state": pack.state, "revision": pack.revision, **detail})


# ---------------------------------------------------------------- expert actions


def create_pack(*, session: Session, data: PackIn | Mapping[str, Any], actor: Actor, source: str | None = None,
                now: datetime | None = None) -> UpdatePack:
    """Create a draft pack; every item is validated and linted now, nothing is published."""
    _require(actor, Role.EXPERT, Role.ADMIN, action="create packs")
    parsed = _parse(data)
    now = now or utcnow()
    pack = UpdatePack(title=parsed.title, submitter=actor.username, source=source, created_at=now, updated_at=now)
    session.add(pack)
    session.flush()
    _write_items(session, pack, parsed)
    _audit(session, pack, actor, "create", items=len(parsed.items), source=source)
    return pack


def edit_pack(*, session: Session, pack_id: str, data: PackIn | Mapping[str, Any], actor: Actor,
              now: datetime | None = None) -> UpdatePack:
    """Replace a draft's (or a submitted pack's) items; a new revision goes back to review."""
    pack = get_pack(session=session, pack_id=pack_id)
    _own(pack, actor, "edit")
    parsed = _parse(data)
    fire(pack, "edit")
    pack.title, pack.revision, pack.updated_at = parsed.title, pack.revision + 1, now or utcnow()
    _write_items(session, pack, parsed)
    session.add(pack)
    _audit(session, pack, actor, "edit", items=len(parsed.items))
    return pack


def submit_pack(*, session: Session, pack_id: str, actor: Actor, sla_hours: float = DEFAULT_SLA_HOURS,
                now: datetime | None = None) -> UpdatePack:
    """Send a draft to compliance review; starts the SLA clock."""
    pack = get_pack(session=session, pack_id=pack_id)
    _own(pack, actor, "submit")
    items = pack_items(session=session, pack_id=pack.id)
    if not items:
        raise ValidationFailed("空更新包不能提交 an empty pack cannot be submitted", errors=[{"field": "items", "message": "empty"}])
    _relint(session, items)
    fire(pack, "submit")
    now = now or utcnow()
    pack.submitted_at, pack.sla_due_at, pack.updated_at = now, now + timedelta(hours=sla_hours), now
    session.add(pack)
    _audit(session, pack, actor, "submit", findings=sum(len(i.findings) for i in items))
    return pack


def withdraw_pack(*, session: Session, pack_id: str, actor: Actor, now: datetime | None = None) -> UpdatePack:
    """Withdraw a draft or submitted pack (final)."""
    return _owner_event(session, pack_id, actor, "withdraw", now)


def pack_input(*, session: Session, pack_id: str) -> dict[str, Any]:
    """The pack as `PackIn` data (title and items as an expert sends them), e.g. to edit it item by item."""
    pack = get_pack(session=session, pack_id=pack_id)
    items = [{"op": i.op, "entry_id": i.entry_id, "base_version": i.base_version, **i.data}
             for i in pack_items(session=session, pack_id=pack.id)]
    return {"title": pack.title, "items": items}


def add_pack_item(*, session: Session, pack_id: str, item: Mapping[str, Any], actor: Actor,
                  now: datetime | None = None) -> UpdatePack:
    """Append one item to your draft (or submitted) pack: an edit, so a new revision."""
    data = pack_input(session=session, pack_id=pack_id)
    data["items"].append(dict(item))
    return edit_pack(session=session, pack_id=pack_id, data=data, actor=actor, now=now)


def remove_pack_item(*, session: Session, pack_id: str, position: int, actor: Actor,
                     now: datetime | None = None) -> UpdatePack:
    """Drop the item at `position` from your draft (or submitted) pack."""
    data = pack_input(session=session, pack_id=pack_id)
    if not 0 <= position < len(data["items"]):
        raise NotFound(f"第 {position + 1} 项不存在 item {position + 1} not found", details={"position": position})
    del data["items"][position]
    return edit_pack(session=session, pack_id=pack_id, data=data, actor=actor, now=now)


def item_diff(*, session: Session, item: PackItem) -> kb_service.VersionDiff | None:
    """What an update item changes against the version it was based on (None for create and retire).
    The start time is left out unless the item names one: approval decides it."""
    if item.op != ItemOp.UPDATE or not item.entry_id or not item.base_version:
        return None
    base = kb_service.get_version(session=session, entry_id=item.entry_id, number=item.base_version)
    content = VersionContent.model_validate({k: v for k, v in item.data.items() if k not in ENTRY_FIELDS})
    before = {name: getattr(base, name) for name in kb_service.CONTENT_FIELDS}
    after = kb_service.version_fields(content, valid_from=content.valid_from or base.valid_from)
    fields, facts, body = kb_service.diff_contents(before, after)
    return kb_service.VersionDiff(item.entry_id, base.number, base.number + 1, fields, facts, body)


def revise_pack(*, session: Session, pack_id: str, actor: Actor, now: datetime | None = None) -> UpdatePack:
    """Take a rejected pack back to draft for changes."""
    return _owner_event(session, pack_id, actor, "revise", now)


def _owner_event(session: Session, pack_id: str, actor: Actor, event: str, now: datetime | None) -> UpdatePack:
    pack = get_pack(session=session, pack_id=pack_id)
    _own(pack, actor, event)
    fire(pack, event)
    pack.updated_at = now or utcnow()
    session.add(pack)
    _audit(session, pack, actor, event)
    return pack


def _counted(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for f in findings:
        metrics.LINT_FINDINGS.labels(flag=str(f.get("flag", "?"))).inc()
    return findings


def _relint(session: Session, items: list[PackItem]) -> list[dict[str, Any]]:
    """Lint every item again with the rules in force now; store and return the findings."""
    findings = []
    for item in items:
        if item.op != ItemOp.RETIRE:
            item.findings = _counted([asdict(f) for f in lint.lint_content(item.data)])
            session.add(item)
        findings.extend({**f, "position": item.position} for f in item.findings)
    session.flush()
    return findings


# ---------------------------------------------------------------- reviewer actions


def _four_eyes(pack: UpdatePack, actor: Actor, action: str) -> None:
    _require(actor, Role.REVIEWER, Role.ADMIN, action=action)
    if pack.submitter == actor.username:
        raise PermissionDenied("四眼原则：提交人不能审批自己的更新包 four-eyes rule: the submitter cannot review their own pack",
                               details={"pack_id": pack.id, "submitter": pack.submitter})


def reject_pack(*, session: Session, pack_id: str, comment: str, actor: Actor, now: datetime | None = None) -> UpdatePack:
    """Send a pack back to its expert with a reason."""
    pack = get_pack(session=session, pack_id=pack_id)
    _four_eyes(pack, actor, "reject packs")
    if not comment or not comment.strip():
        raise ValidationFailed("驳回须填写意见 a rejection needs a comment", errors=[{"field": "comment", "message": "empty"}])
    findings = _relint(session, pack_items(session=session, pack_id=pack.id))
    fire(pack, "reject")
    pack.updated_at = now or utcnow()
    session.add(pack)
    session.add(Review(pack_id=pack.id, pack_revision=pack.revision, reviewer=actor.username, decision="reject",
                       comment=comment.strip(), findings=findings, rules_version=lint.rules_version()))
    _audit(session, pack, actor, "reject", comment=comment.strip())
    return pack


def approve_pack(*, session: Session, pack_id: str, data: ApproveIn | Mapping[str, Any] | None, actor: Actor,
                 now: datetime | None = None) -> UpdatePack:
    """Approve, lint again, and write every item's version in this transaction (with its outbox row).

    Effective now → published; effective later → scheduled (the versions start then). A blocking
    finding needs the reviewer's override reason; a stale base version is a Conflict and nothing is
    written.
    """
    decision = data if isinstance(data, ApproveIn) else ApproveIn.model_validate(dict(data or {}))
    now = now or utcnow()
    pack = get_pack(session=session, pack_id=pack_id)
    _four_eyes(pack, actor, "approve packs")
    if decision.revision is not None and decision.revision != pack.revision:
        raise Conflict(f"更新包已在审核后修改（第 {decision.revision} 版 → 第 {pack.revision} 版），请重新审核 "
                       f"pack changed since it was reviewed", details={"reviewed": decision.revision, "current": pack.revision})
    items = pack_items(session=session, pack_id=pack.id)
    if not items:
        raise ValidationFailed("空更新包不能审批 an empty pack cannot be approved", errors=[{"field": "items", "message": "empty"}])
    findings = _relint(session, items)
    blocking = [f for f in findings if f["severity"] == "block"]
    override = (decision.override_reason or "").strip() or None
    if blocking and not override:
        raise ValidationFailed(
            f"存在 {len(blocking)} 项阻断性合规问题，须填写豁免理由 {len(blocking)} blocking findings need an override reason",
            errors=[{"field": "override_reason", "message": f"{f['flag']}: {f['message']}", "position": f["position"]} for f in blocking],
        )
    effective = decision.effective_at or now
    fire(pack, "approve")
    pack.approved_at, pack.approved_by, pack.effective_at, pack.updated_at = now, actor.username, effective, now
    session.add(Review(pack_id=pack.id, pack_revision=pack.revision, reviewer=actor.username, decision="approve",
                       comment=decision.comment, override_reason=override, findings=findings,
                       rules_version=lint.rules_version()))
    attached = kb_attachments.pending_links(session=session, pack_id=pack.id)
    for item in items:
        _apply(session, pack, item, effective=effective, now=now, attached=attached.get(item.position, []))
    if effective > now:
        fire(pack, "schedule")
    else:
        fire(pack, "publish")
        pack.published_at = now
    metrics.PUBLISHES.labels(kind="schedule" if effective > now else "publish").inc()
    session.add(pack)
    _audit(session, pack, actor, "approve", effective_at=effective.isoformat(), override_reason=override,
           blocking=len(blocking), comment=decision.comment)
    return pack


def _apply(session: Session, pack: UpdatePack, item: PackItem, *, effective: datetime, now: datetime,
           attached: list[str] | None = None) -> None:
    data = dict(item.data)
    # Knowledge never takes effect before it was approved: an earlier (e.g. copied) start moves up.
    requested = to_utc(data.get("valid_from"))
    data["valid_from"] = max(requested, effective) if requested else effective
    author = pack.submitter
    if item.op == ItemOp.CREATE:
        version = kb_service.create_entry(session=session, data=data, actor=author, pack_id=pack.id, now=now)
        item.entry_id, item.result_version = version.entry_id, version.number
        if attached:
            kb_attachments.link_version(session=session, attachment_ids=attached, version_id=version.id,
                                        entry_id=version.entry_id, pack_id=pack.id, position=item.position)
    elif item.op == ItemOp.UPDATE:
        version = kb_service.add_version(session=session, entry_id=item.entry_id or "", base_version=item.base_version or 0,
                                         data=data, actor=author, pack_id=pack.id, now=now)
        item.result_version = version.number
        if version.number > (item.base_version or 0):  # identical content writes no version
            base = kb_service.get_version(session=session, entry_id=version.entry_id, number=item.base_version or 0)
            kb_attachments.link_version(session=session, attachment_ids=attached or [], version_id=version.id,
                                        entry_id=version.entry_id, pack_id=pack.id, position=item.position,
                                        inherit_from=base.id)
    else:
        kb_service.retire_entry(session=session, entry_id=item.entry_id or "", base_version=item.base_version or 0,
                                actor=author, reason=data.get("reason", ""), effective_at=effective, pack_id=pack.id, now=now)
    session.add(item)


# ---------------------------------------------------------------- admin and scheduler


def publish_due(*, session: Session, now: datetime | None = None) -> list[UpdatePack]:
    """Mark scheduled packs whose effective time has come as published (their versions start by themselves)."""
    now = now or utcnow()
    due = session.exec(select(UpdatePack).where(UpdatePack.state == PackState.SCHEDULED,
                                                col(UpdatePack.effective_at) <= now)).all()
    for pack in due:
        fire(pack, "publish")
        pack.published_at = pack.effective_at
        session.add(pack)
        metrics.PUBLISHES.labels(kind="scheduled").inc()
        audit.append(session=session, actor="scheduler", action="pack.publish", object_type="pack", object_id=pack.id,
                     detail={"effective_at": pack.effective_at.isoformat() if pack.effective_at else None})
    return list(due)


def publish_now(*, session: Session, pack_id: str, actor: Actor, now: datetime | None = None) -> UpdatePack:
    """Admin: make a scheduled pack effective now. Versions are immutable, so each scheduled version is
    republished as a new version starting now (the scheduled one then never comes into force)."""
    _require(actor, Role.ADMIN, action="publish now")
    now = now or utcnow()
    pack = get_pack(session=session, pack_id=pack_id)
    fire(pack, "publish")
    for item in pack_items(session=session, pack_id=pack.id):
        entry = kb_service.get_entry(session=session, entry_id=item.entry_id or "")
        if item.op == ItemOp.RETIRE:
            kb_service.reschedule_retirement(session=session, entry_id=entry.id, effective_at=now, actor=actor.username)
            continue
        scheduled = kb_service.get_version(session=session, entry_id=entry.id, number=item.result_version or 0)
        content = {name: getattr(scheduled, name) for name in kb_service.CONTENT_FIELDS} | {"valid_from": now}
        version = kb_service.add_version(session=session, entry_id=entry.id, base_version=entry.latest_version,
                                         data=content, actor=actor.username, pack_id=pack.id, now=now)
        if version.id != scheduled.id:
            kb_attachments.inherit(session=session, from_version_id=scheduled.id, to_version_id=version.id, entry_id=entry.id)
        item.result_version = version.number
        session.add(item)
    pack.published_at, pack.effective_at, pack.updated_at = now, now, now
    session.add(pack)
    metrics.PUBLISHES.labels(kind="publish_now").inc()
    _audit(session, pack, actor, "publish_now")
    return pack


def rollback_entry(*, session: Session, entry_id: str, to_version: int, actor: Actor, reason: str,
                   now: datetime | None = None) -> EntryVersion:
    """Admin: publish the content of an earlier version as a new version; history is never rewritten."""
    _require(actor, Role.ADMIN, action="roll back")
    if not reason.strip():
        raise ValidationFailed("回滚须说明原因 a rollback needs a reason", errors=[{"field": "reason", "message": "empty"}])
    now = now or utcnow()
    entry = kb_service.get_entry(session=session, entry_id=entry_id)
    old = kb_service.get_version(session=session, entry_id=entry_id, number=to_version)
    content = {name: getattr(old, name) for name in kb_service.CONTENT_FIELDS} | {"valid_from": now, "valid_to": None}
    version = kb_service.add_version(session=session, entry_id=entry_id, base_version=entry.latest_version,
                                     data=content, actor=actor.username, now=now)
    if version.id != old.id:
        kb_attachments.inherit(session=session, from_version_id=old.id, to_version_id=version.id, entry_id=entry_id)
    metrics.PUBLISHES.labels(kind="rollback").inc()
    audit.append(session=session, actor=actor.username, action="entry.rollback", object_type="entry", object_id=entry_id,
                 after_hash=version.content_hash, detail={"to_version": to_version, "new_version": version.number, "reason": reason})
    return version


def mark_searchable(*, session: Session, pack_ids: set[str], now: datetime | None = None) -> None:
    """Record when a pack's changes became searchable (the worker calls this after indexing them)."""
    now = now or utcnow()
    for pack_id in pack_ids:
        pack = session.get(UpdatePack, pack_id)
        if pack is not None and pack.searchable_at is None and pack.approved_at is not None:
            pack.searchable_at = max(now, pack.effective_at or now)
            session.add(pack)


# ---------------------------------------------------------------- SLA and freshness


def escalate_overdue(*, session: Session, now: datetime | None = None) -> list[Escalation]:
    """One escalation per overdue pack, for the reviewer group and the admins."""
    now = now or utcnow()
    raised = []
    for pack in review_queue(session=session, now=now):
        if not is_overdue(pack, now) or pack.escalated_at is not None:
            continue
        escalation = Escalation(pack_id=pack.id, due_at=pack.sla_due_at or now, created_at=now,
                                notify_roles=[Role.REVIEWER.value, Role.ADMIN.value])
        pack.escalated_at = now
        session.add_all([escalation, pack])
        audit.append(session=session, actor="sla-clock", action="pack.escalate", object_type="pack", object_id=pack.id,
                     detail={"due_at": escalation.due_at.isoformat()})
        raised.append(escalation)
    return raised


def percentile(values: list[float], q: int) -> float | None:
    """The q-th percentile (inclusive method); None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def freshness(*, session: Session, since: datetime | None = None) -> dict[str, Any]:
    """submit→live (hours) and approve→searchable (seconds), p50 / p95, for packs that became searchable."""
    query = select(UpdatePack).where(col(UpdatePack.searchable_at).is_not(None))
    if since:
        query = query.where(col(UpdatePack.searchable_at) >= to_utc(since))
    packs = session.exec(query).all()
    live = [(p.searchable_at - p.submitted_at).total_seconds() / 3600 for p in packs if p.submitted_at and p.searchable_at]
    searchable = [(p.searchable_at - max(p.approved_at, p.effective_at or p.approved_at)).total_seconds()
                  for p in packs if p.approved_at and p.searchable_at]

    def rounded(values: list[float], q: int, digits: int) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value, digits)

    return {
        "n": len(packs),
        "submit_to_live_hours_p50": rounded(live, 50, 3), "submit_to_live_hours_p95": rounded(live, 95, 3),
        "approve_to_searchable_seconds_p50": rounded(searchable, 50, 1),
        "approve_to_searchable_seconds_p95": rounded(searchable, 95, 1),
        "target_hours": DEFAULT_SLA_HOURS,
    }


def stale_entries(*, session: Session, today: date | None = None) -> list[EntryVersion]:
    """Entries in force whose review date has passed: experts must re-check them."""
    today = today or utcnow().date()
    current = kb_service.current_versions(session=session)
    return sorted((v for v in current.values() if v.review_by is not None and v.review_by < today),
                  key=lambda v: v.review_by or today)
