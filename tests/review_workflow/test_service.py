"""Update packs through their whole life: roles, four eyes, lint gates, publishing, scheduling, SLA."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import func, select

from kb import audit
from kb import service as kb
from kb.errors import Conflict, InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from kb.models import Actor, AuditEvent, ChangeNotice, EntryVersion, OutboxEvent
from review_workflow import service as wf
from review_workflow.models import Escalation, Review
from tests.factories import create_item, entry_data, pack_data, update_item

EXPERT = Actor("expert", "expert")
EXPERT2 = Actor("expert2", "expert")
REVIEWER = Actor("reviewer", "reviewer")
ADMIN = Actor("admin", "admin")
AGENT = Actor("agent", "agent")
T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def count(session, model) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


@pytest.fixture
def session(any_session):
    """Every workflow test runs on SQLite and on PostgreSQL."""
    return any_session


@pytest.fixture
def existing(any_session):
    """A published entry to change."""
    data = entry_data(valid_from=T0 - timedelta(days=30))
    kb.create_entry(session=any_session, data=data, actor="expert", now=T0 - timedelta(days=30))
    any_session.commit()
    return data


def submitted(session, *items, actor=EXPERT, now=T0):
    pack = wf.create_pack(session=session, data=pack_data(*items), actor=actor, now=now)
    wf.submit_pack(session=session, pack_id=pack.id, actor=actor, now=now)
    session.commit()
    return pack


def test_full_life_publishes_a_new_version_with_notice_and_outbox(any_session, existing):
    item = update_item(existing, 1, facts={"起购金额": {"value": "1", "unit": "元"}, "期限": {"value": "90", "unit": "天"}})
    pack = submitted(any_session, item)
    assert pack.state == "submitted" and pack.sla_due_at == T0 + timedelta(hours=24)

    approved = wf.approve_pack(session=any_session, pack_id=pack.id, data={"comment": "同意"}, actor=REVIEWER,
                               now=T0 + timedelta(hours=1))
    any_session.commit()
    assert approved.state == "published" and approved.published_at == T0 + timedelta(hours=1)
    version = kb.get_version(session=any_session, entry_id=existing["id"], number=2)
    assert version.pack_id == pack.id and version.author == "expert"
    assert version.facts["起购金额"] == {"value": "1", "unit": "元"}
    notice = any_session.exec(select(ChangeNotice)).one()
    assert notice.summary == "起购金额：1万元 → 1元"
    assert any_session.exec(select(OutboxEvent).where(OutboxEvent.pack_id == pack.id)).one().processed_at is None
    review = any_session.exec(select(Review)).one()
    assert review.decision == "approve" and review.pack_revision == 1
    actions = [e.action for e in any_session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]
    assert actions[-4:] == ["pack.create", "pack.submit", "entry.version", "pack.approve"]
    assert audit.verify(session=any_session).ok


def test_submitter_never_approves_their_own_pack_even_as_admin(any_session, existing):
    pack = submitted(any_session, update_item(existing, 1, summary="管理员自己改"), actor=ADMIN)
    with pytest.raises(PermissionDenied, match="四眼"):
        wf.approve_pack(session=any_session, pack_id=pack.id, data={}, actor=ADMIN)
    any_session.rollback()
    assert wf.get_pack(session=any_session, pack_id=pack.id).state == "submitted"
    assert wf.approve_pack(session=any_session, pack_id=pack.id, data={}, actor=REVIEWER).state == "published"


@pytest.mark.parametrize("actor", [AGENT, EXPERT2])
def test_only_reviewers_and_admins_approve_or_reject(any_session, existing, actor):
    pack = submitted(any_session, update_item(existing, 1, summary="新摘要"))
    with pytest.raises(PermissionDenied):
        wf.approve_pack(session=any_session, pack_id=pack.id, data={}, actor=actor)
    with pytest.raises(PermissionDenied):
        wf.reject_pack(session=any_session, pack_id=pack.id, comment="不行", actor=actor)


def test_only_the_submitter_edits_submits_or_withdraws(session):
    pack = wf.create_pack(session=session, data=pack_data(create_item()), actor=EXPERT)
    for action in (lambda: wf.submit_pack(session=session, pack_id=pack.id, actor=EXPERT2),
                   lambda: wf.withdraw_pack(session=session, pack_id=pack.id, actor=EXPERT2),
                   lambda: wf.edit_pack(session=session, pack_id=pack.id, data=pack_data(create_item()), actor=EXPERT2)):
        with pytest.raises(PermissionDenied):
            action()
    with pytest.raises(PermissionDenied):
        wf.create_pack(session=session, data=pack_data(create_item()), actor=AGENT)


def test_reject_then_revise_then_resubmit(session, existing):
    pack = submitted(session, update_item(existing, 1, summary="改一下"))
    with pytest.raises(ValidationFailed):
        wf.reject_pack(session=session, pack_id=pack.id, comment="  ", actor=REVIEWER)
    assert wf.reject_pack(session=session, pack_id=pack.id, comment="摘要不准确", actor=REVIEWER).state == "rejected"
    assert wf.revise_pack(session=session, pack_id=pack.id, actor=EXPERT).state == "draft"
    wf.edit_pack(session=session, pack_id=pack.id, data=pack_data(update_item(existing, 1, summary="改好了")), actor=EXPERT)
    assert wf.submit_pack(session=session, pack_id=pack.id, actor=EXPERT).state == "submitted"
    assert [r.decision for r in wf.to_public(session=session, pack=pack).reviews] == ["reject"]


def test_withdrawn_pack_is_final(session):
    pack = submitted(session, create_item())
    wf.withdraw_pack(session=session, pack_id=pack.id, actor=EXPERT)
    with pytest.raises(InvalidTransition):
        wf.submit_pack(session=session, pack_id=pack.id, actor=EXPERT)


def test_approving_a_pack_edited_since_review_is_a_conflict(any_session, existing):
    pack = submitted(any_session, update_item(existing, 1, summary="第一稿"))
    wf.edit_pack(session=any_session, pack_id=pack.id, data=pack_data(update_item(existing, 1, summary="第二稿")), actor=EXPERT)
    any_session.commit()
    assert pack.state == "submitted" and pack.revision == 2
    before = count(any_session, AuditEvent)
    with pytest.raises(Conflict, match="重新审核"):
        wf.approve_pack(session=any_session, pack_id=pack.id, data={"revision": 1}, actor=REVIEWER)
    any_session.rollback()
    assert count(any_session, AuditEvent) == before
    assert wf.get_pack(session=any_session, pack_id=pack.id).state == "submitted"
    assert wf.approve_pack(session=any_session, pack_id=pack.id, data={"revision": 2}, actor=REVIEWER).state == "published"


def test_empty_pack_cannot_be_submitted(session):
    pack = wf.create_pack(session=session, data=pack_data(), actor=EXPERT)
    with pytest.raises(ValidationFailed, match="空更新包"):
        wf.submit_pack(session=session, pack_id=pack.id, actor=EXPERT)


def test_updating_or_retiring_an_unknown_entry_is_refused(session):
    with pytest.raises(NotFound):
        wf.create_pack(session=session, data=pack_data({"op": "update", "entry_id": "NOPE", "base_version": 1,
                                                        "title": "x", "category": "faq"}), actor=EXPERT)
    with pytest.raises(NotFound):
        wf.create_pack(session=session, data=pack_data({"op": "retire", "entry_id": "NOPE", "base_version": 1}), actor=EXPERT)
    with pytest.raises(ValidationFailed, match="base_version"):
        wf.create_pack(session=session, data=pack_data({"op": "update", "entry_id": "NOPE", "title": "x"}), actor=EXPERT)


def test_invalid_item_names_the_field_and_writes_nothing(session):
    before = count(session, AuditEvent)
    with pytest.raises(ValidationFailed) as caught:
        wf.create_pack(session=session, data=pack_data(create_item(risk_level="R7")), actor=EXPERT)
    session.rollback()
    assert caught.value.errors[0]["field"] == "risk_level" and caught.value.errors[0]["position"] == 0
    assert count(session, AuditEvent) == before


def test_stale_base_at_approval_is_a_conflict_and_nothing_is_written(any_session, existing):
    first = submitted(any_session, update_item(existing, 1, summary="甲"))
    second = submitted(any_session, update_item(existing, 1, summary="乙"), actor=EXPERT2)
    wf.approve_pack(session=any_session, pack_id=first.id, data={}, actor=REVIEWER)
    any_session.commit()
    versions_before = count(any_session, EntryVersion)
    with pytest.raises(Conflict) as caught:
        wf.approve_pack(session=any_session, pack_id=second.id, data={}, actor=REVIEWER)
    any_session.rollback()
    assert caught.value.details["current"]["summary"] == "甲"
    assert caught.value.details["attempted"]["summary"] == "乙"
    assert count(any_session, EntryVersion) == versions_before
    assert wf.get_pack(session=any_session, pack_id=second.id).state == "submitted"
    assert audit.verify(session=any_session).ok


def test_blocking_finding_needs_an_override_reason_which_is_audited(session, existing):
    promise = update_item(existing, 1, body="本产品保本保收益，稳赚不赔。")
    pack = submitted(session, promise)
    findings = wf.to_public(session=session, pack=pack).findings
    assert "guaranteed_return_promise" in {f["flag"] for f in findings}
    with pytest.raises(ValidationFailed) as caught:
        wf.approve_pack(session=session, pack_id=pack.id, data={}, actor=REVIEWER)
    assert caught.value.fields == ["override_reason"] * len(caught.value.errors)
    session.rollback()
    wf.approve_pack(session=session, pack_id=pack.id, data={"override_reason": "监管口径确认：引用的是客户原话"}, actor=REVIEWER)
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "pack.approve")).one()
    assert event.detail["override_reason"] == "监管口径确认：引用的是客户原话"
    assert session.exec(select(Review)).one().findings


def test_scheduled_pack_publishes_at_its_effective_time(any_session, existing):
    pack = submitted(any_session, update_item(existing, 1, summary="下月生效"))
    later = T0 + timedelta(days=3)
    wf.approve_pack(session=any_session, pack_id=pack.id, data={"effective_at": later.isoformat()}, actor=REVIEWER,
                    now=T0 + timedelta(hours=1))
    any_session.commit()
    assert pack.state == "scheduled"
    assert kb.entry_as_of(session=any_session, entry_id=existing["id"], at=T0 + timedelta(days=1)).number == 1
    assert kb.entry_as_of(session=any_session, entry_id=existing["id"], at=later).number == 2
    assert wf.publish_due(session=any_session, now=T0 + timedelta(days=1)) == []
    assert [p.id for p in wf.publish_due(session=any_session, now=later)] == [pack.id]
    assert pack.state == "published" and pack.published_at == later


def test_admin_publish_now_makes_a_scheduled_pack_effective_immediately(session, existing):
    pack = submitted(session, update_item(existing, 1, summary="提前生效"))
    wf.approve_pack(session=session, pack_id=pack.id, data={"effective_at": (T0 + timedelta(days=5)).isoformat()},
                    actor=REVIEWER, now=T0)
    with pytest.raises(PermissionDenied):
        wf.publish_now(session=session, pack_id=pack.id, actor=REVIEWER, now=T0)
    wf.publish_now(session=session, pack_id=pack.id, actor=ADMIN, now=T0 + timedelta(hours=1))
    current = kb.entry_as_of(session=session, entry_id=existing["id"], at=T0 + timedelta(hours=2))
    assert current.number == 3 and current.summary == "提前生效"
    assert kb.entry_as_of(session=session, entry_id=existing["id"], at=T0 + timedelta(days=6)).number == 3


def test_retire_item_takes_the_entry_out_at_its_effective_time(session, existing):
    pack = submitted(session, {"op": "retire", "entry_id": existing["id"], "base_version": 1, "reason": "产品停售"})
    wf.approve_pack(session=session, pack_id=pack.id, data={}, actor=REVIEWER, now=T0)
    assert kb.entry_as_of(session=session, entry_id=existing["id"], at=T0 + timedelta(minutes=1)) is None
    notice = session.exec(select(ChangeNotice)).one()
    assert notice.kind == "retire" and "产品停售" in notice.summary


def test_rollback_publishes_old_content_as_a_new_version(session, existing):
    pack = submitted(session, update_item(existing, 1, summary="错误的修改"))
    wf.approve_pack(session=session, pack_id=pack.id, data={}, actor=REVIEWER, now=T0)
    with pytest.raises(PermissionDenied):
        wf.rollback_entry(session=session, entry_id=existing["id"], to_version=1, actor=REVIEWER, reason="x")
    version = wf.rollback_entry(session=session, entry_id=existing["id"], to_version=1, actor=ADMIN, reason="误发布",
                                now=T0 + timedelta(hours=1))
    assert version.number == 3 and version.summary == existing["summary"]
    assert [v.number for v in kb.history(session=session, entry_id=existing["id"])] == [1, 2, 3]
    assert session.exec(select(AuditEvent).where(AuditEvent.action == "entry.rollback")).one().detail["to_version"] == 1


def test_overdue_packs_escalate_once_and_lead_the_queue(session):
    old = submitted(session, create_item(), now=T0)
    fresh = submitted(session, create_item(), now=T0 + timedelta(hours=20))
    now = T0 + timedelta(hours=25)
    assert [p.id for p in wf.review_queue(session=session, now=now)] == [old.id, fresh.id]
    assert len(wf.escalate_overdue(session=session, now=now)) == 1
    assert wf.escalate_overdue(session=session, now=now + timedelta(hours=1)) == []
    escalation = session.exec(select(Escalation)).one()
    assert escalation.pack_id == old.id and escalation.notify_roles == ["reviewer", "admin"]
    assert wf.to_public(session=session, pack=old, now=now).overdue


def test_freshness_metrics(session):
    pack = submitted(session, create_item(), now=T0)
    wf.approve_pack(session=session, pack_id=pack.id, data={}, actor=REVIEWER, now=T0 + timedelta(hours=2))
    wf.mark_searchable(session=session, pack_ids={pack.id}, now=T0 + timedelta(hours=2, seconds=3))
    metrics = wf.freshness(session=session)
    assert metrics["n"] == 1
    assert metrics["submit_to_live_hours_p50"] == pytest.approx(2.001, abs=0.001)
    assert metrics["approve_to_searchable_seconds_p95"] == pytest.approx(3.0)


def test_stale_entries_are_those_past_their_review_date(session):
    kb.create_entry(session=session, data=entry_data(review_by="2026-01-01", valid_from=T0 - timedelta(days=200)), actor="e")
    kb.create_entry(session=session, data=entry_data(review_by="2099-01-01", valid_from=T0 - timedelta(days=200)), actor="e")
    stale = wf.stale_entries(session=session, today=T0.date())
    assert [str(v.review_by) for v in stale] == ["2026-01-01"]
