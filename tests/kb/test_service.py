"""Entries and versions on SQLite and PostgreSQL: create, version, conflict, retire, diff, as-of."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, func, select

from kb import audit, service
from kb.errors import Conflict, NotFound, ValidationFailed
from kb.models import AuditEvent, Entry, EntryVersion
from tests.factories import entry_data, version_data

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _audit_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(AuditEvent)).one()


def test_create_entry_round_trips_chinese_exactly(any_session):
    data = entry_data(
        title="數字人民幣錢包「四類」開通 — e-CNY ①",
        body="第一行：繁體與简体混排。\n第二行：𠀀 生僻字、emoji 💴、全角ＡＢＣ。",
        tags=["數字人民幣", "e-CNY"],
    )
    created = service.create_entry(session=any_session, data=data, actor="expert", now=T0)
    any_session.commit()
    any_session.expunge_all()

    stored = service.get_version(session=any_session, entry_id=data["id"], number=1)
    assert stored.title == data["title"]
    assert stored.body == data["body"]
    assert stored.tags == ["數字人民幣", "e-CNY"]
    assert stored.facts == {"起购金额": {"value": "1", "unit": "万元"}, "期限": {"value": "90", "unit": "天"}}
    assert stored.category == "product"
    assert stored.content_hash == created.content_hash
    assert stored.valid_from == datetime(2025, 12, 31, 16, 0, tzinfo=UTC)


def test_chinese_category_names_and_code_names_are_one_taxonomy(session):
    a = service.create_entry(session=session, data=entry_data(category="常见问题"), actor="e")
    b = service.create_entry(session=session, data=entry_data(category="faq"), actor="e")
    assert a.category == b.category == "faq"


def test_add_version_keeps_every_version(any_session):
    data = entry_data()
    service.create_entry(session=any_session, data=data, actor="expert", now=T0)
    v2 = service.add_version(
        session=any_session, entry_id=data["id"], base_version=1,
        data=version_data(data, facts={"起购金额": {"value": "1", "unit": "元"}}), actor="expert2", now=T0,
    )
    any_session.commit()
    assert v2.number == 2
    versions = service.history(session=any_session, entry_id=data["id"])
    assert [v.number for v in versions] == [1, 2]
    assert versions[0].facts["起购金额"] == {"value": "1", "unit": "万元"}
    assert any_session.get(Entry, data["id"]).latest_version == 2


def test_stale_base_version_is_a_conflict_showing_both_versions(any_session):
    data = entry_data()
    service.create_entry(session=any_session, data=data, actor="expert", now=T0)
    service.add_version(session=any_session, entry_id=data["id"], base_version=1,
                        data=version_data(data, summary="甲的修改"), actor="甲", now=T0)
    any_session.commit()
    before = _audit_count(any_session)

    with pytest.raises(Conflict) as caught:
        service.add_version(session=any_session, entry_id=data["id"], base_version=1,
                            data=version_data(data, summary="乙的修改"), actor="乙", now=T0)
    any_session.rollback()
    details = caught.value.details
    assert details["current"]["summary"] == "甲的修改"
    assert details["current"]["number"] == 2
    assert details["attempted"]["summary"] == "乙的修改"
    assert len(service.history(session=any_session, entry_id=data["id"])) == 2
    assert _audit_count(any_session) == before


def test_two_experts_editing_at_once_one_wins_the_other_gets_a_conflict(any_engine):
    data = entry_data()
    with Session(any_engine) as s:
        service.create_entry(session=s, data=data, actor="expert", now=T0)
        s.commit()
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def edit(name: str) -> None:
        with Session(any_engine) as s:
            barrier.wait()
            try:
                service.add_version(session=s, entry_id=data["id"], base_version=1,
                                    data=version_data(data, summary=f"{name}的修改"), actor=name)
                s.commit()
                outcomes[name] = "ok"
            except Conflict as exc:
                s.rollback()
                outcomes[name] = exc

    threads = [threading.Thread(target=edit, args=(n,)) for n in ("甲", "乙")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(type(o).__name__ for o in outcomes.values()) == ["Conflict", "str"]
    loser = next(o for o in outcomes.values() if isinstance(o, Conflict))
    winner = next(n for n, o in outcomes.items() if o == "ok")
    assert loser.details["current"]["summary"] == f"{winner}的修改"
    with Session(any_engine) as s:
        assert [v.number for v in service.history(session=s, entry_id=data["id"])] == [1, 2]
        assert audit.verify(session=s).ok


def test_identical_content_writes_no_new_version(session):
    data = entry_data()
    service.create_entry(session=session, data=data, actor="expert", now=T0)
    before = _audit_count(session)
    same = service.add_version(session=session, entry_id=data["id"], base_version=1,
                               data=version_data(data), actor="expert")
    assert same.number == 1
    assert _audit_count(session) == before


def test_unknown_entry_is_not_found(session):
    with pytest.raises(NotFound):
        service.add_version(session=session, entry_id="NOPE", base_version=1, data=entry_data(), actor="x")
    with pytest.raises(NotFound):
        service.get_version(session=session, entry_id="NOPE", number=1)


def test_duplicate_entry_id_is_a_conflict(session):
    data = entry_data()
    service.create_entry(session=session, data=data, actor="e")
    with pytest.raises(Conflict):
        service.create_entry(session=session, data=data, actor="e")


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"category": "理财产品"}, "category"),
        ({"title": "   "}, "title"),
        ({"risk_level": "R9"}, "risk_level"),
        ({"facts": ["起购金额", "1万元"]}, "facts"),
        ({"facts": "起购金额1万元"}, "facts"),
        ({"valid_from": "2026-05-01", "valid_to": "2026-04-01"}, "valid_to"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(any_session, override, field):
    before = _audit_count(any_session)
    with pytest.raises(ValidationFailed) as caught:
        service.create_entry(session=any_session, data=entry_data(**override), actor="e")
    assert field in caught.value.fields
    any_session.rollback()
    assert any_session.exec(select(func.count()).select_from(Entry)).one() == 0
    assert any_session.exec(select(func.count()).select_from(EntryVersion)).one() == 0
    assert _audit_count(any_session) == before
    assert audit.verify(session=any_session).ok


def test_risk_level_is_case_insensitive_and_may_be_empty(session):
    assert service.create_entry(session=session, data=entry_data(risk_level="r3"), actor="e").risk_level == "R3"
    assert service.create_entry(session=session, data=entry_data(risk_level=""), actor="e").risk_level is None


def test_as_of_follows_versions_schedules_and_retirement(any_session):
    data = entry_data(valid_from=T0)
    eid = data["id"]
    service.create_entry(session=any_session, data=data, actor="e", now=T0)
    service.add_version(session=any_session, entry_id=eid, base_version=1,
                        data=version_data(data, summary="第二版", valid_from=T0 + timedelta(days=10)), actor="e", now=T0)
    # Version 3 is scheduled for later still: until then version 2 is in force.
    service.add_version(session=any_session, entry_id=eid, base_version=2,
                        data=version_data(data, summary="第三版", valid_from=T0 + timedelta(days=30)), actor="e", now=T0)
    service.retire_entry(session=any_session, entry_id=eid, base_version=3, actor="e",
                         effective_at=T0 + timedelta(days=60), now=T0)
    any_session.commit()

    def at(days: float) -> int | None:
        version = service.entry_as_of(session=any_session, entry_id=eid, at=T0 + timedelta(days=days))
        return version.number if version else None

    assert at(-1) is None
    assert at(0) == 1
    assert at(9.99) == 1
    assert at(10) == 2
    assert at(29) == 2
    assert at(30) == 3
    assert at(60) is None
    assert service.current_versions(session=any_session, at=T0 + timedelta(days=15))[eid].number == 2
    assert eid not in service.current_versions(session=any_session, at=T0 + timedelta(days=61))


def test_expired_version_is_not_in_force(session):
    data = entry_data(valid_from=T0, valid_to=T0 + timedelta(days=5))
    service.create_entry(session=session, data=data, actor="e", now=T0)
    assert service.entry_as_of(session=session, entry_id=data["id"], at=T0 + timedelta(days=4)) is not None
    assert service.entry_as_of(session=session, entry_id=data["id"], at=T0 + timedelta(days=5)) is None


def test_retire_twice_or_on_stale_base_is_a_conflict(session):
    data = entry_data()
    service.create_entry(session=session, data=data, actor="e")
    with pytest.raises(Conflict):
        service.retire_entry(session=session, entry_id=data["id"], base_version=0, actor="e")
    service.retire_entry(session=session, entry_id=data["id"], base_version=1, actor="e")
    with pytest.raises(Conflict):
        service.retire_entry(session=session, entry_id=data["id"], base_version=1, actor="e")


def test_diff_shows_fact_changes_fields_and_body_lines(session):
    data = entry_data()
    service.create_entry(session=session, data=data, actor="e", now=T0)
    new_body = data["body"].replace("起购金额1万元。", "起购金额1元。")
    service.add_version(
        session=session, entry_id=data["id"], base_version=1, actor="e", now=T0,
        data=version_data(data, body=new_body, risk_level="R3",
                          facts={"起购金额": {"value": "1", "unit": "元"}, "开放日": "每周一"}),
    )
    diff = service.diff_versions(session=session, entry_id=data["id"], from_version=1, to_version=2)
    facts = {f.key: f for f in diff.facts}
    assert (facts["起购金额"].before, facts["起购金额"].after, facts["起购金额"].change) == ("1万元", "1元", "changed")
    assert facts["期限"].change == "removed"
    assert facts["开放日"].change == "added" and facts["开放日"].after == "每周一"
    assert [(f.field, f.before, f.after) for f in diff.fields] == [("risk_level", "R2", "R3")]
    assert "-起购金额1万元。" in diff.body and "+起购金额1元。" in diff.body


def test_list_entries_filters_by_category_type_and_text(session):
    service.create_entry(session=session, data=entry_data(title="大额存单20万起存", category="product", product_type="large_cd"), actor="e")
    service.create_entry(session=session, data=entry_data(title="信用卡激活流程", category="业务流程", product_type="credit_card"), actor="e")
    retired = entry_data(title="已下线产品")
    service.create_entry(session=session, data=retired, actor="e")
    service.retire_entry(session=session, entry_id=retired["id"], base_version=1, actor="e")

    page, total = service.list_entries(session=session)
    assert total == 2
    assert [e.current.title for e in service.list_entries(session=session, category="业务流程")[0]] == ["信用卡激活流程"]
    assert service.list_entries(session=session, product_type="large_cd")[1] == 1
    assert service.list_entries(session=session, q="存单")[1] == 1
    page, total = service.list_entries(session=session, offset=1, limit=1)
    assert total == 2 and len(page) == 1


def test_versions_cannot_be_rewritten_through_the_orm(session):
    data = entry_data()
    version = service.create_entry(session=session, data=data, actor="e")
    session.commit()
    version.title = "篡改"
    with pytest.raises(RuntimeError, match="immutable"):
        session.flush()


def test_effective_windows_match_the_as_of_rule(session):
    data = entry_data(valid_from=T0)
    eid = data["id"]
    service.create_entry(session=session, data=data, actor="e", now=T0)
    service.add_version(session=session, entry_id=eid, base_version=1,
                        data=version_data(data, summary="二", valid_from=T0 + timedelta(days=30)), actor="e", now=T0)
    # Version 3 starts before version 2: version 2 never comes into force.
    service.add_version(session=session, entry_id=eid, base_version=2,
                        data=version_data(data, summary="三", valid_from=T0 + timedelta(days=20)), actor="e", now=T0)
    service.retire_entry(session=session, entry_id=eid, base_version=3, actor="e",
                         effective_at=T0 + timedelta(days=90), now=T0)
    windows = {w.version.number: w for w in service.all_windows(session=session)}
    assert (windows[1].start, windows[1].end) == (T0, T0 + timedelta(days=20))
    assert windows[2].start == windows[2].end  # never in force
    assert (windows[3].start, windows[3].end) == (T0 + timedelta(days=20), T0 + timedelta(days=90))
    for day in range(-1, 95):
        at = T0 + timedelta(days=day, hours=1)
        in_force = [n for n, w in windows.items() if w.start <= at and (w.end is None or at < w.end)]
        expected = service.entry_as_of(session=session, entry_id=eid, at=at)
        assert in_force == ([expected.number] if expected else [])
