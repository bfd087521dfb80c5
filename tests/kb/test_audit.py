"""The audit chain on SQLite and PostgreSQL: every write is chained, tampering is found."""
from __future__ import annotations

from sqlalchemy import text
from sqlmodel import select

from kb import audit, service, users
from kb.models import AuditEvent
from tests.factories import entry_data, version_data


def _fill(session) -> None:
    data = entry_data()
    service.create_entry(session=session, data=data, actor="expert", pack_id="p1")
    service.add_version(session=session, entry_id=data["id"], base_version=1,
                        data=version_data(data, summary="改"), actor="expert")
    users.create_user(session=session, username="审核员甲", password="zhiku-demo", role="reviewer", actor="admin")
    service.retire_entry(session=session, entry_id=data["id"], base_version=2, actor="admin", reason="产品停售")
    session.commit()


def test_every_mutation_appends_a_linked_event(any_session):
    _fill(any_session)
    events = any_session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [e.action for e in events] == ["entry.create", "entry.version", "user.create", "entry.retire"]
    assert [e.id for e in events] == [1, 2, 3, 4]
    assert events[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:]))
    assert events[1].before_hash == events[0].after_hash
    assert events[3].detail["reason"] == "产品停售"
    assert audit.verify(session=any_session) == audit.ChainReport(True, 4)


def test_empty_chain_verifies(any_session):
    assert audit.verify(session=any_session) == audit.ChainReport(True, 0)


def test_edited_row_is_detected(any_session):
    _fill(any_session)
    any_session.execute(text("UPDATE audit_event SET actor = 'mallory' WHERE id = 2"))
    any_session.commit()
    report = audit.verify(session=any_session)
    assert not report.ok and report.first_broken == 2


def test_edited_detail_with_rehash_breaks_the_next_link(any_session):
    _fill(any_session)
    event = any_session.get(AuditEvent, 2)
    forged_detail = {**event.detail, "base_version": 99}
    forged = AuditEvent(**{**event.model_dump(), "detail": forged_detail})
    new_hash = audit.link_hash(event.prev_hash, forged)
    any_session.execute(
        text("UPDATE audit_event SET detail = :d, hash = :h WHERE id = 2"),
        {"d": audit.canonical_json(forged_detail), "h": new_hash},
    )
    any_session.commit()
    report = audit.verify(session=any_session)
    assert not report.ok and report.first_broken == 3


def test_deleted_row_in_the_middle_is_detected(any_session):
    _fill(any_session)
    any_session.execute(text("DELETE FROM audit_event WHERE id = 2"))
    any_session.commit()
    report = audit.verify(session=any_session)
    assert not report.ok and report.first_broken == 2


def test_deleted_tail_is_detected(any_session):
    _fill(any_session)
    any_session.execute(text("DELETE FROM audit_event WHERE id = 4"))
    any_session.commit()
    report = audit.verify(session=any_session)
    assert not report.ok and report.first_broken == 4


def test_rolled_back_write_leaves_the_chain_unchanged(any_session):
    _fill(any_session)
    service.create_entry(session=any_session, data=entry_data(), actor="expert")
    any_session.rollback()
    assert audit.verify(session=any_session) == audit.ChainReport(True, 4)
