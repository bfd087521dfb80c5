"""The index remembers whose vectors it holds: a changed encoder (ZHIKU_ENCODER, another model) is never
mixed with the old vectors — serving refuses, `zhiku reindex` re-embeds everything. Both backends."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from qdrant_client import QdrantClient
from sqlmodel import Session

from api.runtime import Runtime
from ingestion.indexer import UNRECORDED
from kb import service
from kb.db import session_scope
from kb.errors import Unavailable
from retrieval.embedding import HashingEmbedder
from retrieval.index.client import QdrantClientIndex
from retrieval.index.edge import EdgeIndex
from tests.factories import entry_data

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TITLES = {"MORT": "房贷利率", "ECNY": "数字人民币钱包开通", "CD": "大额存单提前支取"}


class Named(HashingEmbedder):
    """The fake embedder under another name: what a changed encoder looks like to the index."""

    def __init__(self, name: str, dim: int = 128) -> None:
        super().__init__(dim)
        self._name = name

    @property
    def name(self) -> str:
        return self._name


@pytest.fixture(params=["edge", "memory"])
def open_runtime(request, settings, sqlite_engine, tmp_path):
    """open_runtime(embedder) -> a Runtime on the same database and the same index each time."""
    settings.database_url = str(sqlite_engine.url)
    client = QdrantClient(":memory:")
    opened: list[Runtime] = []

    def index():  # type: ignore[no-untyped-def]
        if request.param == "edge":
            return EdgeIndex(tmp_path / "index")
        return QdrantClientIndex(client, owns_client=False)

    def open_(embedder: HashingEmbedder) -> Runtime:
        for runtime in opened:
            runtime.close()
        opened.append(Runtime.open(settings, embedder=embedder, index=index()))
        return opened[-1]

    with session_scope(sqlite_engine) as session:
        for entry_id, title in TITLES.items():
            service.create_entry(session=session, data=entry_data(id=entry_id, title=title, category="faq", valid_from=T0),
                                 actor="expert", now=T0)
    yield open_
    opened[-1].close()
    client.close()


def recorded(runtime: Runtime) -> list[str | None]:
    return [index.embedder() for index in runtime.indexer.indexes]


def test_a_new_index_records_its_embedder_and_a_changed_one_is_re_embedded_whole(open_runtime):
    first = open_runtime(Named("e5-small+int8"))
    assert first.sync_index().replaced_embedder is None
    assert recorded(first) == ["e5-small+int8", "e5-small+int8"]  # chunks and names alike

    second = open_runtime(Named("e5-small"))  # reopened with another encoder
    assert recorded(second) == ["e5-small+int8", "e5-small+int8"]  # the record survives a reopen
    with Session(second.engine) as session:
        drift = second.indexer.check(session=session)
        windows = service.all_windows(session=session)
    assert not drift.ok and drift.other_embedder == "e5-small+int8" and not drift.missing
    with pytest.raises(Unavailable, match="zhiku reindex") as refused:  # what `zhiku serve` and the worker call
        second.indexer.require_own_vectors()
    assert "e5-small+int8" in refused.value.message
    with pytest.raises(Unavailable, match="zhiku reindex"):  # an outbox event never mixes the two
        second.indexer.apply(windows[:1])

    report = second.sync_index()  # `zhiku reindex` / `zhiku demo load`: all of it, even with nothing missing
    assert report.replaced_embedder == "e5-small+int8" and report.versions_indexed == len(TITLES)
    assert recorded(second) == ["e5-small", "e5-small"]
    with Session(second.engine) as session:
        assert second.indexer.check(session=session).ok
    second.indexer.require_own_vectors()
    assert second.searcher.search("大额存单提前支取", top_k=1).hits[0].entry_id == "CD"
    assert second.sync_index().versions_indexed == 0  # and only once


def test_vectors_from_before_the_record_count_as_another_embedders(open_runtime):
    runtime = open_runtime(Named("e5-small"))
    indexer = runtime.indexer
    with Session(runtime.engine) as session:
        windows = service.all_windows(session=session)
    for index in indexer.indexes:  # an index written by an earlier Zhiku: points, no record
        index.ensure_collection(dim=indexer.embedder.dim)
    runtime.index.upsert(indexer.points(windows))
    assert recorded(runtime) == [None, None]
    assert indexer.other_embedder() == UNRECORDED  # unknown vectors are not trusted

    report = runtime.sync_index()
    assert report.replaced_embedder == UNRECORDED and report.versions_indexed == len(TITLES)
    assert recorded(runtime) == ["e5-small", "e5-small"] and indexer.other_embedder() is None


def test_an_empty_index_takes_the_current_embedder_without_a_rebuild(open_runtime):
    runtime = open_runtime(Named("e5-small+int8"))
    runtime.indexer.ensure_ready()  # the worker's first event on a fresh store
    assert recorded(runtime) == ["e5-small+int8", "e5-small+int8"]
    runtime = open_runtime(Named("e5-small"))  # nothing indexed yet: nothing to mix, nothing refused
    assert runtime.indexer.other_embedder() is None
    runtime.indexer.require_own_vectors()
    report = runtime.sync_index()
    assert report.replaced_embedder is None and report.versions_indexed == len(TITLES)
    assert recorded(runtime) == ["e5-small", "e5-small"]


def test_a_model_with_another_dimension_gets_new_collections_on_reindex(open_runtime):
    first = open_runtime(Named("multilingual-e5-small"))
    first.sync_index()
    second = open_runtime(Named("bge-small-zh", dim=64))  # a bank's own model, another vector size
    with pytest.raises(Unavailable, match="zhiku reindex"):
        second.indexer.require_own_vectors()
    report = second.sync_index()  # `zhiku reindex`: the collections are remade at the new size
    assert report.replaced_embedder == "multilingual-e5-small" and report.versions_indexed == len(TITLES)
    assert recorded(second) == ["bge-small-zh", "bge-small-zh"]
    assert all(index.count() > 0 for index in second.indexer.indexes)
    assert second.searcher.search("数字人民币钱包开通", top_k=1).hits[0].entry_id == "ECNY"
    third = open_runtime(Named("bge-small-zh", dim=64))  # and it reopens as it was left
    assert third.indexer.other_embedder() is None and third.sync_index().versions_indexed == 0


def test_another_model_in_the_same_folder_is_caught_by_its_fingerprint(open_runtime):
    first = open_runtime(Named("multilingual-e5-small@0123456789ab"))
    first.sync_index()
    second = open_runtime(Named("multilingual-e5-small@ba9876543210"))  # same folder, same size, other weights
    with pytest.raises(Unavailable, match="zhiku reindex") as refused:
        second.indexer.require_own_vectors()
    assert "multilingual-e5-small@0123456789ab" in refused.value.message
    assert second.sync_index().replaced_embedder == "multilingual-e5-small@0123456789ab"
    assert recorded(second) == ["multilingual-e5-small@ba9876543210"] * 2


def test_a_record_from_before_fingerprints_is_adopted_without_a_rebuild(open_runtime):
    old = open_runtime(Named("multilingual-e5-small+int8"))  # what session 8's Zhiku recorded
    old.sync_index()
    new = open_runtime(Named("multilingual-e5-small@0123456789ab+int8"))
    assert new.indexer.other_embedder() is None
    new.indexer.require_own_vectors()  # `zhiku serve`: the record is brought up to date
    assert recorded(new) == ["multilingual-e5-small@0123456789ab+int8"] * 2
    assert new.sync_index().versions_indexed == 0
    # but the old record is not the fp32 model's: another encoder is still refused
    fp32 = open_runtime(Named("multilingual-e5-small@0123456789ab"))
    assert fp32.indexer.other_embedder() == "multilingual-e5-small@0123456789ab+int8"
