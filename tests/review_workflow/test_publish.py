"""Publishing through the outbox into a real (in-memory) Qdrant: searchable after approval, and a
crash or a down index at any step completes later with no lost change and no duplicate point."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from ingestion.chunking import chunk_version
from ingestion.indexer import Indexer
from ingestion.worker import OutboxWorker
from kb import service as kb
from kb.db import session_scope
from kb.models import Actor, OutboxEvent
from kb.timeutil import utcnow
from review_workflow import service as wf
from review_workflow.models import UpdatePack
from tests.factories import create_item, entry_data, pack_data, update_item

EXPERT = Actor("expert", "expert")
REVIEWER = Actor("reviewer", "reviewer")


class FlakyIndex:
    """Wraps a real index; fails upserts before or after writing, like a crash at that step."""

    def __init__(self, inner, *, fail: str) -> None:
        self.inner, self.fail = inner, fail

    def upsert(self, points):
        if self.fail == "before":
            raise ConnectionError("index down")
        self.inner.upsert(points)
        if self.fail == "after":
            raise RuntimeError("worker killed after the index write")

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def published(runtime):
    """An entry in force, indexed; then a pack changing it, approved (not yet indexed)."""
    data = entry_data(id="WM-01", title="云岭稳享理财", valid_from=utcnow() - timedelta(days=10))
    with session_scope(runtime.engine) as session:
        kb.create_entry(session=session, data=data, actor="expert")
    runtime.drain_outbox()
    with session_scope(runtime.engine) as session:
        pack = wf.create_pack(session=session, data=pack_data(update_item(data, 1, summary="起购金额下调为1元", body="起购金额1元。理财非存款、产品有风险、投资须谨慎。")), actor=EXPERT)
        wf.submit_pack(session=session, pack_id=pack.id, actor=EXPERT)
        wf.approve_pack(session=session, pack_id=pack.id, data={}, actor=REVIEWER)
    return runtime, pack.id


def expected_points(runtime) -> int:
    with Session(runtime.engine) as session:
        windows = kb.all_windows(session=session)
        return sum(len(chunk_version({k: getattr(w.version, k) for k in ("title", "summary", "synonyms", "facts", "body")}))
                   for w in windows)


def versions_found(runtime, query="云岭稳享理财"):
    return [(h.entry_id, h.version) for h in runtime.searcher.search(query, top_k=5).hits if h.entry_id == "WM-01"]


def test_approved_change_becomes_searchable_and_replaces_the_old_version(published):
    runtime, pack_id = published
    assert versions_found(runtime) == [("WM-01", 1)]
    assert runtime.worker.run_once().events == 1
    assert versions_found(runtime) == [("WM-01", 2)]
    with Session(runtime.engine) as session:
        pack = session.get(UpdatePack, pack_id)
        assert pack.searchable_at is not None and pack.searchable_at >= pack.approved_at
        assert runtime.indexer.check(session=session).ok


@pytest.mark.parametrize("fail", ["before", "after"])
def test_a_crash_at_the_index_write_completes_on_restart_without_duplicates(published, fail):
    runtime, pack_id = published
    broken = OutboxWorker(engine=runtime.engine, indexer=Indexer(index=FlakyIndex(runtime.index, fail=fail),
                                                                  embedder=runtime.embedder, analyzer=runtime.analyzer))
    result = broken.run_once()
    assert result.error
    with Session(runtime.engine) as session:
        event = session.exec(select(OutboxEvent).where(OutboxEvent.pack_id == pack_id)).one()
        assert event.processed_at is None and event.attempts == 1 and event.last_error
    # Restart: a healthy worker finishes the publish; deterministic ids leave no duplicate.
    assert runtime.worker.drain() == 1
    assert runtime.index.count() == expected_points(runtime)
    assert versions_found(runtime) == [("WM-01", 2)]
    assert runtime.worker.drain() == 0
    assert runtime.index.count() == expected_points(runtime)


def test_a_worker_that_runs_twice_changes_nothing(published):
    runtime, _ = published
    runtime.worker.drain()
    points = runtime.index.count()
    with session_scope(runtime.engine) as session:
        for event in session.exec(select(OutboxEvent)).all():
            event.processed_at = None  # replay every event, as after a lost acknowledgement
            session.add(event)
    runtime.worker.drain()
    assert runtime.index.count() == points == expected_points(runtime)


def test_scheduled_pack_is_indexed_now_and_found_from_its_effective_time(runtime):
    data = entry_data(id="CD-01", title="云岭大额存单", valid_from=utcnow() - timedelta(days=10))
    with session_scope(runtime.engine) as session:
        kb.create_entry(session=session, data=data, actor="expert")
    later = utcnow() + timedelta(days=2)
    with session_scope(runtime.engine) as session:
        pack = wf.create_pack(session=session, data=pack_data(update_item(data, 1, summary="起存金额调整为30万元")), actor=EXPERT)
        wf.submit_pack(session=session, pack_id=pack.id, actor=EXPERT)
        wf.approve_pack(session=session, pack_id=pack.id, data={"effective_at": later.isoformat()}, actor=REVIEWER)
    runtime.drain_outbox()

    def version_at(at):
        hits = runtime.searcher.search("云岭大额存单", top_k=5, as_of=at).hits
        return [h.version for h in hits if h.entry_id == "CD-01"]

    assert version_at(None) == [1]
    assert version_at(later + timedelta(minutes=1)) == [2]


def test_worker_tick_publishes_due_packs_and_escalates_overdue_ones(runtime):
    with session_scope(runtime.engine) as session:
        pack = wf.create_pack(session=session, data=pack_data(create_item()), actor=EXPERT)
        wf.submit_pack(session=session, pack_id=pack.id, actor=EXPERT, now=utcnow() - timedelta(hours=30))
    runtime.worker.run_once()
    with Session(runtime.engine) as session:
        assert session.get(UpdatePack, pack.id).escalated_at is not None
