"""Tests of the vector index layer (retrieval/index), run against both backends:

* ``edge``   — EdgeIndex on a qdrant-edge shard in tmp_path (exact mode, the default)
* ``memory`` — QdrantClientIndex on QdrantClient(":memory:")

Vectors are tiny and hand-made so that the nearest neighbours are known.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from retrieval.index import (
    OPEN_END,
    ChunkPoint,
    Hit,
    IndexFilter,
    IndexUnavailable,
    SparseVec,
    VectorIndex,
)
from retrieval.index.client import QdrantClientIndex, open_client_index
from retrieval.index.edge import EdgeIndex

DIM = 4
REPO_ROOT = Path(__file__).resolve().parents[2]


def pid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"zhiku-test/{name}"))


def point(
    name: str,
    dense: tuple[float, ...],
    sparse: dict[int, float] | None = None,
    *,
    entry: str | None = None,
    version: str | None = None,
    chunk: int = 0,
    category: str = "cards",
    product_type: str | None = None,
    tags: tuple[str, ...] = (),
    valid_from: int = 0,
    valid_to: int = OPEN_END,
) -> ChunkPoint:
    entry = entry or f"entry-{name}"
    version = version or f"{entry}-v1"
    return ChunkPoint(
        id=pid(name),
        dense=dense,
        sparse=SparseVec.from_dict(sparse or {}),
        payload={
            "entry_id": entry,
            "version_id": version,
            "version": 1,
            "chunk": chunk,
            "category": category,
            "product_type": product_type,
            "tags": list(tags),
            "valid_from": valid_from,
            "valid_to": valid_to,
            "title": f"title {name}",
            "text": f"text of {name}",
        },
    )


# Four points near the four axes; sparse terms chosen so that term 1 is common
# (3 docs) and term 9 is rare (1 doc).
CORPUS = [
    point("a", (1.0, 0.1, 0.0, 0.0), {1: 2.0, 2: 1.0}, category="cards", product_type="gold", tags=("fees",)),
    point("b", (0.1, 1.0, 0.0, 0.0), {1: 1.0, 9: 1.0}, category="loans", product_type="classic", tags=("rates", "fees")),
    point("c", (0.0, 0.2, 1.0, 0.0), {1: 1.0, 3: 1.0}, category="loans", product_type=None, tags=()),
    point("d", (0.0, 0.0, 0.1, 1.0), {4: 1.0}, category="deposits", product_type="gold", tags=("rates",)),
]


def make_edge(path: Path, **kw: object) -> EdgeIndex:
    return EdgeIndex(path, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["edge", "memory"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    if request.param == "edge":
        idx: VectorIndex = make_edge(tmp_path / "shard")
    else:
        idx = QdrantClientIndex(QdrantClient(":memory:"))
    idx.ensure_collection(dim=DIM)
    yield idx
    idx.close()


@pytest.fixture()
def loaded(index: VectorIndex) -> VectorIndex:
    index.upsert(CORPUS)
    return index


@pytest.fixture(scope="module", params=["edge", "memory"])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VectorIndex]:
    """CORPUS loaded once per backend, for read-only tests (creating a shard costs ~0.3 s)."""
    if request.param == "edge":
        idx: VectorIndex = make_edge(tmp_path_factory.mktemp("shared") / "shard")
    else:
        idx = QdrantClientIndex(QdrantClient(":memory:"))
    idx.ensure_collection(dim=DIM)
    idx.upsert(CORPUS)
    yield idx
    idx.close()


def names(hits: list[Hit]) -> list[str]:
    """Point names, read back from the payload (hits always carry it)."""
    return [str(h.payload["title"]).removeprefix("title ") for h in hits]


def search(idx: VectorIndex, mode: str, dense: tuple[float, ...], sparse: dict[int, float], **kw: object) -> list[Hit]:
    if mode == "dense":
        return idx.search_dense(dense, **kw)  # type: ignore[arg-type]
    if mode == "sparse":
        return idx.search_sparse(SparseVec.from_dict(sparse), **kw)  # type: ignore[arg-type]
    return idx.search_hybrid(dense, SparseVec.from_dict(sparse), **kw)  # type: ignore[arg-type]


MODES = ["dense", "sparse", "hybrid"]
# A query that every corpus point matches in every mode (term 1 or 4 / any dense).
ALL_Q = ((0.5, 0.5, 0.5, 0.5), {1: 1.0, 4: 1.0})
ALL_Q_VEC = (ALL_Q[0], SparseVec.from_dict(ALL_Q[1]))


# -- basics ---------------------------------------------------------------------
def test_protocol(index: VectorIndex) -> None:
    assert isinstance(index, VectorIndex)


def test_dense_nearest_neighbours(shared: VectorIndex) -> None:
    hits = shared.search_dense((0.05, 0.9, 0.1, 0.0), limit=2)
    assert names(hits) == ["b", "c"]  # cos(q,c)≈0.27 > cos(q,a)≈0.15
    assert hits[0].score > hits[1].score
    assert hits[0].score == pytest.approx(0.99, abs=0.02)  # cosine
    assert hits[0].payload["title"] == "title b"
    assert hits[0].payload["tags"] == ["rates", "fees"]
    assert hits[0].id == str(uuid.UUID(hits[0].id))  # canonical uuid string

    assert names(shared.search_dense((0.0, 0.0, 0.2, 1.0), limit=1)) == ["d"]
    assert len(shared.search_dense((1.0, 1.0, 1.0, 1.0), limit=10)) == 4


def test_dense_accepts_numpy(shared: VectorIndex) -> None:
    np = pytest.importorskip("numpy")
    hits = shared.search_dense(np.array([0.0, 0.1, 1.0, 0.0], dtype=np.float32), limit=1)
    assert names(hits) == ["c"]


def test_sparse_search_only_matching_terms(shared: VectorIndex) -> None:
    assert names(shared.search_sparse(SparseVec((3,), (1.0,)), limit=10)) == ["c"]
    assert set(names(shared.search_sparse(SparseVec((1,), (1.0,)), limit=10))) == {"a", "b", "c"}
    assert shared.search_sparse(SparseVec((12345,), (1.0,)), limit=10) == []
    assert shared.search_sparse(SparseVec((), ()), limit=10) == []
    hit = shared.search_sparse(SparseVec((4,), (1.0,)), limit=1)[0]
    assert hit.payload["category"] == "deposits"


def test_sparse_applies_idf(shared: VectorIndex) -> None:
    # Raw dot product would rank "a" first (tf 2.0 on common term 1 vs 1.0 on
    # rare term 9); with the IDF modifier the rare term dominates -> "b".
    hits = shared.search_sparse(SparseVec((1, 9), (1.0, 1.0)), limit=3)
    assert names(hits)[0] == "b"
    assert hits[0].score > hits[1].score > 0


def test_hybrid_fuses_both_lists(shared: VectorIndex) -> None:
    # Dense prefers c, then b; sparse (term 3) only matches c -> c first.
    hits = shared.search_hybrid((0.0, 0.3, 1.0, 0.0), SparseVec((3,), (1.0,)), limit=3)
    assert names(hits)[0] == "c"
    assert len(hits) == 3
    assert hits[0].score > hits[1].score
    assert all(h.payload.get("title") for h in hits)

    # A point found only by the sparse branch beats the dense runner-up:
    # dense -> [a, b] (prefetch is raised to limit), sparse (term 4) -> [d].
    hits = shared.search_hybrid((1.0, 0.0, 0.0, 0.0), SparseVec((4,), (1.0,)), limit=2, prefetch=1)
    assert set(names(hits)) == {"a", "d"}

    # Rank agreement: best in both branches wins regardless of rrf_k.
    for k in (1, 60):
        assert names(shared.search_hybrid((0.1, 1.0, 0.0, 0.0), SparseVec((9,), (1.0,)), limit=1, rrf_k=k)) == ["b"]


def test_hybrid_with_empty_sparse_is_dense(shared: VectorIndex) -> None:
    hits = shared.search_hybrid((0.0, 0.0, 0.1, 1.0), SparseVec((), ()), limit=2)
    assert names(hits)[0] == "d"


def test_limit_must_be_positive(shared: VectorIndex) -> None:
    with pytest.raises(ValueError):
        shared.search_dense((1.0, 0.0, 0.0, 0.0), limit=0)


# -- filters ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (IndexFilter(), {"a", "b", "c", "d"}),
        (IndexFilter(categories=("loans",)), {"b", "c"}),
        (IndexFilter(categories=("loans", "deposits")), {"b", "c", "d"}),
        (IndexFilter(product_types=("gold",)), {"a", "d"}),
        (IndexFilter(tags=("fees",)), {"a", "b"}),
        (IndexFilter(tags=("rates", "nope")), {"b", "d"}),  # any-of
        (IndexFilter(entry_ids=("entry-a", "entry-c")), {"a", "c"}),
        (IndexFilter(categories=("loans",), tags=("fees",)), {"b"}),  # AND across fields
        (IndexFilter(categories=("loans",), product_types=("gold",)), set()),
        (IndexFilter(categories=("nothing",)), set()),
    ],
)
def test_filters(shared: VectorIndex, mode: str, flt: IndexFilter, expected: set[str]) -> None:
    hits = search(shared, mode, *ALL_Q, limit=10, flt=flt)
    assert set(names(hits)) == expected


@pytest.mark.parametrize("mode", MODES)
def test_valid_at_boundaries(index: VectorIndex, mode: str) -> None:
    index.upsert(
        [
            point("w", (1.0, 0.0, 0.0, 0.0), {1: 1.0}, valid_from=100, valid_to=200),
            point("o", (0.9, 0.1, 0.0, 0.0), {1: 1.0}, valid_from=150, valid_to=OPEN_END),
        ]
    )

    def at(t: int) -> set[str]:
        return set(names(search(index, mode, (1.0, 0.0, 0.0, 0.0), {1: 1.0}, limit=10, flt=IndexFilter(valid_at=t))))

    assert at(99) == set()
    assert at(100) == {"w"}
    assert at(149) == {"w"}
    assert at(150) == {"w", "o"}
    assert at(199) == {"w", "o"}
    assert at(200) == {"o"}
    assert at(OPEN_END - 1) == {"o"}
    assert at(OPEN_END) == set()


def test_filter_lone_string_is_not_split(shared: VectorIndex) -> None:
    hits = shared.search_dense((1.0, 1.0, 1.0, 1.0), limit=10, flt=IndexFilter(categories="loans"))  # type: ignore[arg-type]
    assert set(names(hits)) == {"b", "c"}


# -- versions ---------------------------------------------------------------------
def version_points(version: str, n: int, *, entry: str = "entry-x", valid_from: int = 0) -> list[ChunkPoint]:
    return [
        point(f"{version}-{i}", (0.0, 0.0, 1.0, 0.1 * i), {7: 1.0}, entry=entry, version=version, chunk=i, valid_from=valid_from)
        for i in range(n)
    ]


def test_set_valid_to_closes_and_reopens(index: VectorIndex) -> None:
    index.upsert(version_points("x-v1", 3) + version_points("x-v2", 2, valid_from=500))
    flt = IndexFilter(valid_at=1000)
    assert len(index.search_dense((0.0, 0.0, 1.0, 0.0), limit=10, flt=flt)) == 5

    assert index.set_valid_to(version_id="x-v1", valid_to=500) == 3
    hits = index.search_dense((0.0, 0.0, 1.0, 0.0), limit=10, flt=flt)
    assert {h.payload["version_id"] for h in hits} == {"x-v2"}
    assert all(h.payload["valid_to"] == OPEN_END for h in hits)
    old = index.search_sparse(SparseVec((7,), (1.0,)), limit=10, flt=IndexFilter(valid_at=499))
    assert {h.payload["version_id"] for h in old} == {"x-v1"}
    assert all(h.payload["valid_to"] == 500 for h in old)
    # other payload keys untouched
    assert sorted(h.payload["chunk"] for h in old) == [0, 1, 2]

    assert index.set_valid_to(version_id="x-v1", valid_to=OPEN_END) == 3
    assert len(index.search_dense((0.0, 0.0, 1.0, 0.0), limit=10, flt=flt)) == 5
    assert index.set_valid_to(version_id="no-such-version", valid_to=1) == 0
    assert index.count() == 5


def test_delete_version(index: VectorIndex) -> None:
    index.upsert(CORPUS + version_points("x-v1", 3) + version_points("x-v2", 2))
    assert index.count() == 9
    index.delete_version(version_id="x-v1")
    assert index.count() == 6
    assert "x-v1" not in index.version_ids()
    hits = index.search_sparse(SparseVec((7,), (1.0,)), limit=10)
    assert {h.payload["version_id"] for h in hits} == {"x-v2"}
    index.delete_version(version_id="x-v1")  # idempotent
    index.delete_version(version_id="never-existed")
    assert index.count() == 6


def test_version_ids(index: VectorIndex) -> None:
    assert index.version_ids() == {}
    index.upsert(version_points("x-v1", 3) + version_points("x-v2", 2) + [CORPUS[0]])
    assert index.version_ids() == {"x-v1": 3, "x-v2": 2, "entry-a-v1": 1}


def test_version_ids_follow_moves_and_deletes(index: VectorIndex) -> None:
    index.upsert(version_points("x-v1", 2))
    moved = version_points("x-v1", 2)[1]
    index.upsert([ChunkPoint(moved.id, moved.dense, moved.sparse, {**moved.payload, "version_id": "x-v2"})])
    assert index.version_ids() == {"x-v1": 1, "x-v2": 1}
    index.delete_version(version_id="x-v1")
    index.delete_version(version_id="x-v2")
    assert index.version_ids() == {}
    assert index.count() == 0


def test_concurrent_reads_and_writes(index: VectorIndex) -> None:
    import threading

    index.upsert(CORPUS)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(50):
                assert index.search_hybrid(*ALL_Q_VEC, limit=3)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def writer() -> None:
        try:
            for i in range(50):
                index.upsert([point(f"t{i}", (0.5, 0.5, 0.0, 0.0), {5: 1.0}, version="vt")])
                index.set_valid_to(version_id="vt", valid_to=1000 + i)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=reader), threading.Thread(target=reader), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert index.count() == 54
    assert index.version_ids()["vt"] == 50


def test_upsert_is_idempotent_by_id(index: VectorIndex) -> None:
    index.upsert(CORPUS)
    index.upsert(CORPUS)
    assert index.count() == 4
    changed = point("a", (1.0, 0.1, 0.0, 0.0), {1: 2.0}, category="fx")
    index.upsert([changed, changed])
    assert index.count() == 4
    hits = index.search_dense((1.0, 0.0, 0.0, 0.0), limit=1)
    assert hits[0].id == pid("a") and hits[0].payload["category"] == "fx"
    index.upsert([])
    assert index.count() == 4


RANKING = ("entry_id", "version", "version_id", "title", "category", "product_type", "valid_from")


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_named_fields_match_the_full_payload_and_follow_writes(index: VectorIndex, mode: str) -> None:
    """A search that names its fields gets them (on the edge index from its payload cache): the same
    hits and values as a full-payload search, also after a point is rewritten, a version deleted or
    its valid_to moved (valid_to is never served from the cache)."""
    q = ALL_Q
    index.upsert(CORPUS)
    full = search(index, mode, *q, limit=10)
    named = search(index, mode, *q, limit=10, fields=RANKING)
    assert [h.id for h in named] == [h.id for h in full]
    assert all(h.payload[f] == g.payload[f] for h, g in zip(named, full, strict=True) for f in RANKING)

    index.upsert([point("a", (1.0, 0.1, 0.0, 0.0), {1: 2.0, 2: 1.0}, category="fx")])
    assert {h.payload["category"] for h in search(index, mode, *q, limit=10, fields=RANKING) if h.id == pid("a")} == {"fx"}
    index.delete_version(version_id="entry-b-v1")
    assert pid("b") not in {h.id for h in search(index, mode, *q, limit=10, fields=RANKING)}
    index.set_valid_to(version_id="entry-c-v1", valid_to=500)
    hits = search(index, mode, *q, limit=10, fields=(*RANKING, "valid_to"))
    assert {h.payload["valid_to"] for h in hits if h.id == pid("c")} == {500}


def test_upsert_many_batches(index: VectorIndex) -> None:
    pts = [point(f"n{i}", (1.0, i / 600, 0.0, 0.0), {i: 1.0}, version=f"v{i % 7}") for i in range(600)]
    index.upsert(pts)
    assert index.count() == 600
    assert sum(index.version_ids().values()) == 600


def test_valid_to_defaults_to_open_end(index: VectorIndex) -> None:
    p = point("z", (1.0, 0.0, 0.0, 0.0))
    payload = {k: v for k, v in p.payload.items() if k != "valid_to"}
    index.upsert([ChunkPoint(p.id, p.dense, p.sparse, payload)])
    hits = index.search_dense((1.0, 0.0, 0.0, 0.0), limit=1, flt=IndexFilter(valid_at=10**11))
    assert hits and hits[0].payload["valid_to"] == OPEN_END


# -- collection lifecycle -------------------------------------------------------------
def test_ensure_collection_idempotent_and_dim_checked(loaded: VectorIndex) -> None:
    loaded.ensure_collection(dim=DIM)
    loaded.ensure_collection(dim=DIM)
    assert loaded.count() == 4
    with pytest.raises(ValueError, match="dim"):
        loaded.ensure_collection(dim=DIM + 1)
    assert loaded.count() == 4


def test_optimize_keeps_results(loaded: VectorIndex) -> None:
    loaded.optimize()
    assert loaded.count() == 4
    assert names(loaded.search_dense((0.05, 0.9, 0.1, 0.0), limit=1)) == ["b"]


def test_closed_index_raises(index: VectorIndex) -> None:
    index.close()
    with pytest.raises(IndexUnavailable):
        index.search_dense((1.0, 0.0, 0.0, 0.0), limit=1)
    index.close()  # idempotent


# -- edge-specific ------------------------------------------------------------------
def test_edge_reads_before_creation(tmp_path: Path) -> None:
    idx = EdgeIndex(tmp_path / "new")
    assert idx.count() == 0
    assert idx.version_ids() == {}
    assert idx.search_dense((1.0, 0.0, 0.0, 0.0), limit=3) == []
    with pytest.raises(RuntimeError, match="ensure_collection"):
        idx.upsert(CORPUS)
    idx.close()


def test_edge_persistence_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    idx = EdgeIndex(path)
    idx.ensure_collection(dim=DIM)
    idx.upsert(CORPUS)
    idx.set_valid_to(version_id="entry-b-v1", valid_to=42)
    idx.delete_version(version_id="entry-d-v1")
    idx.close()

    idx = EdgeIndex(path)
    try:
        assert idx.count() == 3  # readable before ensure_collection
        idx.ensure_collection(dim=DIM)
        assert idx.version_ids() == {"entry-a-v1": 1, "entry-b-v1": 1, "entry-c-v1": 1}
        hit = idx.search_dense((0.1, 1.0, 0.0, 0.0), limit=1)[0]
        assert hit.id == pid("b") and hit.payload["valid_to"] == 42
        assert names(idx.search_sparse(SparseVec((9,), (1.0,)), limit=1)) == ["b"]
        with pytest.raises(ValueError, match="dim"):
            idx.ensure_collection(dim=8)
    finally:
        idx.close()


def test_edge_second_handle_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    first = EdgeIndex(path)
    first.ensure_collection(dim=DIM)
    first.upsert(CORPUS)
    with pytest.raises(IndexUnavailable, match="used by another process") as exc:
        EdgeIndex(path)
    assert "ZHIKU_QDRANT_URL" in str(exc.value)
    first.close()
    second = EdgeIndex(path)  # lock released on close
    assert second.count() == 4
    second.close()


def test_edge_second_process_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    first = EdgeIndex(path)
    first.ensure_collection(dim=DIM)
    code = textwrap.dedent(
        f"""
        from retrieval.index import IndexUnavailable
        from retrieval.index.edge import EdgeIndex
        try:
            EdgeIndex({str(path)!r})
        except IndexUnavailable as e:
            print("UNAVAILABLE", e)
        else:
            print("OPENED")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    first.close()
    assert out.stdout.startswith("UNAVAILABLE"), out.stdout + out.stderr
    assert "another process" in out.stdout


def test_edge_hnsw_mode(tmp_path: Path) -> None:
    idx = EdgeIndex(tmp_path / "shard", hnsw=True, hnsw_ef=64)
    idx.ensure_collection(dim=DIM)
    idx.upsert(CORPUS)
    idx.optimize()
    idx.upsert([point("e", (0.0, 0.0, 0.0, 1.0), {4: 1.0})])  # after optimize: found by scan
    assert idx.count() == 5
    assert names(idx.search_dense((0.0, 0.0, 0.0, 1.0), limit=1)) == ["e"]
    assert names(idx.search_dense((0.05, 0.9, 0.1, 0.0), limit=1)) == ["b"]
    idx.close()
    # mode can be switched on reopen
    idx = EdgeIndex(tmp_path / "shard", hnsw=False)
    assert names(idx.search_dense((0.05, 0.9, 0.1, 0.0), limit=1)) == ["b"]
    idx.close()


def test_edge_dim_error_is_value_error(tmp_path: Path) -> None:
    idx = EdgeIndex(tmp_path / "shard")
    idx.ensure_collection(dim=DIM)
    with pytest.raises(ValueError):
        idx.upsert([point("bad", (1.0, 0.0, 0.0))])
    with pytest.raises(ValueError):
        idx.search_dense((1.0, 0.0), limit=1)
    idx.close()


# -- client-specific ------------------------------------------------------------------
def test_client_reads_before_creation() -> None:
    idx = QdrantClientIndex(QdrantClient(":memory:"))
    assert idx.count() == 0
    assert idx.version_ids() == {}
    assert idx.search_dense((1.0, 0.0, 0.0, 0.0), limit=3) == []
    idx.close()


def test_client_server_down_is_unavailable() -> None:
    # discard port on loopback: nothing listens
    idx = open_client_index(url="http://127.0.0.1:9", timeout=2, check_compatibility=False)
    with pytest.raises(IndexUnavailable, match="unreachable"):
        idx.ensure_collection(dim=DIM)
    with pytest.raises(IndexUnavailable):
        idx.search_dense((1.0, 0.0, 0.0, 0.0), limit=1)
    idx.close()


def test_client_local_path_locked(tmp_path: Path) -> None:
    first = open_client_index(path=str(tmp_path / "local"))
    first.ensure_collection(dim=DIM)
    first.upsert(CORPUS)
    with pytest.raises(IndexUnavailable, match="another process"):
        open_client_index(path=str(tmp_path / "local"))
    first.close()
    second = open_client_index(path=str(tmp_path / "local"))
    assert second.count() == 4
    second.close()


def test_a_sibling_is_a_separate_index_of_the_same_kind(index: VectorIndex) -> None:
    index.upsert(CORPUS)
    other = index.sibling("names")
    assert type(other) is type(index)
    other.ensure_collection(dim=DIM)
    other.upsert(version_points("v-names", 2))
    assert other.version_ids() == {"v-names": 2} and "v-names" not in index.version_ids()
    assert index.count() == len(CORPUS)
    other.close()  # closing the sibling leaves this index (and a shared client) open
    assert names(index.search_dense((0.05, 0.9, 0.1, 0.0), limit=1)) == ["b"]
