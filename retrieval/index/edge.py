"""Embedded vector index on qdrant-edge (``qdrant-edge-py``, module ``qdrant_edge``).

One :class:`EdgeIndex` owns one shard directory. Facts about qdrant-edge 0.9.0
(beta) that shape this module:

* **One handle per directory.** The WAL is locked with an OS file lock; a
  second handle (same or other process) fails with ``Can't init WAL:
  WouldBlock``. We translate that into :class:`IndexUnavailable`. The WAL is
  never disabled (without it, updates are durable only after ``flush()``).
* **optimize() holds the GIL for its whole run** (measured: ~1.4 s at 10k and
  ~93 s at 100k points with HNSW on 2 cores; every Python thread, hence the
  web server, stalls meanwhile). The default mode is therefore ``hnsw=False``:
  the optimizer's indexing threshold is 0 (no HNSW graph is ever built) and
  dense search is an exact scan (``SearchParams(exact=True)``), which is
  ~1 ms at 10k and ~8–9 ms p95 at 100k points of 384-d. ``optimize()`` then
  only vacuums deleted points / merges segments (~1 s at 30k); call it in a
  maintenance window, not on the request path.
* With ``hnsw=True``, new upserts stay in an unindexed appendable segment
  (still searched, by scan) until the next ``optimize()``.
* Payload is only returned when asked (``with_payload=True``); ids come back
  as :class:`uuid.UUID`; ``Fusion.Rrf`` needs ``k``.
* Loading with a config requires the full vector schema (a partial config is
  rejected), so on load we rebuild it from the persisted dim.
* Reads from several threads are not serialised here (the handle is
  internally synchronised; concurrent reads + writes were exercised without
  error); writes and lifecycle are serialised by a lock so that
  ``set_valid_to`` (count + update) is atomic w.r.t. other writers and
  ``close()`` never races a write. A read racing ``close()`` gets
  IndexUnavailable.
* The facet used by ``version_ids()`` keeps deleted values with count 0
  until the shard is reopened; they are dropped here.
* Payload storage defaults to "cold" (read from disk per hit); we ask for
  ``Memory.Cached``, measurably faster (see bench/index_latency.py).
* Even so, returning payload is most of a query's cost, and the query holds
  the GIL: 60 hits of 384-d on 440 points took 0.11 ms without payload and
  0.66 ms with the seven ranking fields. A search that names its fields is
  therefore asked for ids only and its payloads come from a process-local
  cache (:data:`PAYLOAD_CACHE` points). That is safe because a point's id is
  its version and chunk number and its payload never changes once written,
  except ``valid_to`` — which the cache does not keep (asking for it goes to
  the shard). An upsert evicts the points it writes; deleting a version
  empties the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from kb.lru import Lru

from .base import (
    DENSE_VECTOR,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    SPARSE_VECTOR,
    ChunkPoint,
    Hit,
    IndexFilter,
    IndexUnavailable,
    SparseVec,
    check_limit,
    dense_list,
    filter_conditions,
    payload_dict,
)

_CONFIG_FILE = "edge_config.json"
_ZHIKU_FILE = "zhiku_index.json"  # beside the engine's files: which embedder's vectors the shard holds
_UPSERT_BATCH = 256
#: Qdrant's default: segments with more than this many KB of vectors get an HNSW graph.
_HNSW_INDEXING_THRESHOLD_KB = 10_000
_LOCKED_MARKERS = ("WouldBlock", "Can't init WAL", "Resource temporarily unavailable")
_CLOSED_MARKERS = ("Shard is not initialized",)
#: Payload fields updated in place (never served from the payload cache).
_MUTABLE_FIELDS = frozenset({"valid_to"})
#: Chunk payloads kept per process (≈ 1 KB each).
PAYLOAD_CACHE = 50_000


class EdgeIndex:
    """:class:`~retrieval.index.base.VectorIndex` on an embedded qdrant-edge shard.

    ``EdgeIndex(path)`` opens the shard at ``path`` if one exists (raising
    :class:`IndexUnavailable` if another handle holds it); otherwise the shard
    is created by :meth:`ensure_collection`. Until then reads return nothing
    and writes raise ``RuntimeError``.

    ``hnsw=False`` (default): exact dense search, no HNSW graph is ever built.
    ``hnsw=True``: ``optimize()`` builds HNSW (``hnsw_m``, ``hnsw_ef_construct``);
    searches use it with ``hnsw_ef`` (None = engine default). The mode can be
    switched when reopening a shard.

    ``float16=True`` stores dense vectors as float16 (half the RAM/disk, ~2x
    faster exact scan, recall@10 0.999 on clustered 384-d data). Fixed when
    the shard is created; on reopen the stored type wins.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        hnsw: bool = False,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 100,
        hnsw_ef: int | None = None,
        float16: bool = False,
        max_search_threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.hnsw = hnsw
        self._float16 = float16
        self._hnsw_m = hnsw_m
        self._hnsw_ef_construct = hnsw_ef_construct
        self._hnsw_ef = hnsw_ef
        self._max_search_threads = max_search_threads
        self._lock = threading.RLock()
        self._shard: Any = None
        self._dim: int | None = None
        self._closed = False
        self._payloads: Lru[str, dict[str, Any]] = Lru(PAYLOAD_CACHE)
        if self._exists():
            self._open()

    def sibling(self, name: str) -> EdgeIndex:
        """The shard in ``<path>-<name>`` beside this one, opened with the same settings."""
        return EdgeIndex(self.path.with_name(f"{self.path.name}-{name}"), hnsw=self.hnsw, hnsw_m=self._hnsw_m,
                         hnsw_ef_construct=self._hnsw_ef_construct, hnsw_ef=self._hnsw_ef, float16=self._float16,
                         max_search_threads=self._max_search_threads)

    # -- lifecycle -----------------------------------------------------------
    def _exists(self) -> bool:
        return (self.path / _CONFIG_FILE).is_file()

    def _persisted(self) -> tuple[int, bool] | None:
        """(dense dim, float16?) from the shard's edge_config.json, None if unreadable."""
        try:
            cfg = json.loads((self.path / _CONFIG_FILE).read_text(encoding="utf-8"))
            dense = cfg["vectors"][DENSE_VECTOR]
            return int(dense["size"]), str(dense.get("datatype") or "").lower() == "float16"
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _config(self, dim: int, float16: bool) -> qe.EdgeConfig:
        if self.hnsw:
            optimizers = qe.EdgeOptimizersConfig(indexing_threshold=_HNSW_INDEXING_THRESHOLD_KB)
            hnsw_cfg = qe.HnswIndexConfig(
                m=self._hnsw_m, ef_construct=self._hnsw_ef_construct, full_scan_threshold=10_000
            )
        else:
            # indexing_threshold=0: the optimizer never builds an HNSW graph.
            optimizers = qe.EdgeOptimizersConfig(indexing_threshold=0)
            hnsw_cfg = None
        dense = qe.EdgeVectorParams(
            size=dim,
            distance=qe.Distance.Cosine,
            datatype=qe.VectorStorageDatatype.Float16 if float16 else None,
        )
        return qe.EdgeConfig(
            vectors={DENSE_VECTOR: dense},
            sparse_vectors={SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            hnsw_config=hnsw_cfg,
            optimizers=optimizers,
            # Payload pages kept in RAM: the default ("cold") costs ~1-10 ms per
            # query fetching 10 payloads at 100k points; ~1 KB/point of RAM.
            payload_memory=qe.Memory.Cached,
            max_search_threads=self._max_search_threads,
        )

    def _unavailable(self, exc: BaseException) -> IndexUnavailable:
        msg = str(exc)
        if any(m in msg for m in _LOCKED_MARKERS):
            return IndexUnavailable(
                f"vector index {self.path} is used by another process; stop the other "
                "zhiku server or point ZHIKU_QDRANT_URL at a Qdrant server"
            )
        if any(m in msg for m in _CLOSED_MARKERS):
            return IndexUnavailable(f"vector index {self.path} is closed")
        return IndexUnavailable(f"cannot open vector index {self.path}: {msg}")

    def _open(self) -> None:
        persisted = self._persisted()
        # Passing the full config (same stored schema) lets the hnsw/exact mode and the
        # payload placement change on reopen; a partial config is rejected by the engine.
        config = self._config(*persisted) if persisted else None
        try:
            self._shard = qe.EdgeShard.load(str(self.path), config)
        except Exception as exc:  # qdrant_edge raises bare Exception
            raise self._unavailable(exc) from exc
        # None only if edge_config.json is unreadable: the dim check is then skipped.
        self._dim = persisted[0] if persisted else None
        self._float16 = persisted[1] if persisted else self._float16

    def _require(self) -> Any:
        shard = self._shard
        if shard is None:
            if self._closed:
                raise IndexUnavailable(f"vector index {self.path} is closed")
            raise RuntimeError(f"vector index {self.path} does not exist yet: call ensure_collection(dim=...)")
        return shard

    def _reader(self) -> Any | None:
        """The shard for a read, or None when it does not exist yet (reads see an empty index)."""
        if self._shard is None and not self._closed:
            return None
        return self._require()

    def ensure_collection(self, *, dim: int, recreate: bool = False) -> None:
        dim = int(dim)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        with self._lock:
            if self._closed:
                raise IndexUnavailable(f"vector index {self.path} is closed")
            if recreate and self._dim is not None and self._dim != dim:
                self._shard.close()
                self._shard, self._dim = None, None
                self._payloads.clear()
                shutil.rmtree(self.path)
            if self._shard is None:
                if self._exists():
                    self._open()
                else:
                    try:
                        self.path.mkdir(parents=True, exist_ok=True)
                        self._shard = qe.EdgeShard.create(str(self.path), self._config(dim, self._float16))
                    except Exception as exc:
                        raise self._unavailable(exc) from exc
                    self._dim = dim
            if self._dim is not None and self._dim != dim:
                raise ValueError(
                    f"vector index {self.path} has dense dim {self._dim}, not {dim}; "
                    "run `zhiku reindex` to rebuild it for the new embedding model"
                )
            self._ensure_payload_indexes()

    def _ensure_payload_indexes(self) -> None:
        shard = self._require()
        have = set(shard.info().payload_schema)
        for name in KEYWORD_FIELDS:
            if name not in have:
                shard.update(qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword))
        for name in INTEGER_FIELDS:
            if name not in have:
                shard.update(qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Integer))

    def embedder(self) -> str | None:
        try:
            name = json.loads((self.path / _ZHIKU_FILE).read_text(encoding="utf-8")).get("embedder")
        except (OSError, ValueError, AttributeError):
            return None
        return str(name) if name else None

    def set_embedder(self, name: str) -> None:
        with self._lock:
            self._require()
            tmp = self.path / f".{_ZHIKU_FILE}.tmp"
            tmp.write_text(json.dumps({"embedder": str(name)}, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, self.path / _ZHIKU_FILE)

    def close(self) -> None:
        with self._lock:
            shard, self._shard = self._shard, None
            self._closed = True
            if shard is not None:
                shard.close()

    def __enter__(self) -> EdgeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------
    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        if not points:
            return
        with self._lock:
            shard = self._require()
            for start in range(0, len(points), _UPSERT_BATCH):
                batch = [_point(p) for p in points[start : start + _UPSERT_BATCH]]
                self._call(shard.update, qe.UpdateOperation.upsert_points(batch))
            for p in points:
                self._payloads.pop(str(p.id))

    def set_valid_to(self, *, version_id: str, valid_to: int) -> int:
        flt = _version_filter(version_id)
        with self._lock:
            shard = self._require()
            n = int(self._call(shard.count, qe.CountRequest(exact=True, filter=flt)))
            if n:
                op = qe.UpdateOperation.set_payload_by_filter(flt, {"valid_to": int(valid_to)})
                self._call(shard.update, op)
            return n

    def delete_version(self, *, version_id: str) -> None:
        with self._lock:
            shard = self._require()
            op = qe.UpdateOperation.delete_points_by_filter(_version_filter(version_id))
            self._call(shard.update, op)
            self._payloads.clear()

    def optimize(self) -> None:
        """Run the optimizers (blocking; holds the GIL for the whole run)."""
        with self._lock:
            shard = self._require()
            self._call(shard.optimize)

    # -- reads ---------------------------------------------------------------
    def _dense_params(self) -> qe.SearchParams:
        if self.hnsw:
            return qe.SearchParams(hnsw_ef=self._hnsw_ef)
        return qe.SearchParams(exact=True)

    def _points(self, request: qe.QueryRequest) -> list[Any]:
        shard = self._reader()
        return [] if shard is None else self._call(shard.query, request)

    def _run(self, request: qe.QueryRequest) -> list[Hit]:
        return [Hit(str(p.id), float(p.score), p.payload or {}) for p in self._points(request)]

    def _query(self, limit: int, query: Any, flt: IndexFilter | None, fields: Sequence[str] | None,
               params: qe.SearchParams | None = None) -> list[Hit]:
        """One nearest-neighbour query; named immutable `fields` come from the payload cache."""
        cached = bool(fields) and not _MUTABLE_FIELDS.intersection(fields or ())
        request = qe.QueryRequest(limit=check_limit(limit), query=query, filter=_filter(flt), params=params,
                                  with_payload=False if cached else (list(fields) if fields else True))
        if not cached:
            return self._run(request)
        hits = [(str(p.id), float(p.score)) for p in self._points(request)]
        payloads = {i: self._payloads.get(i) for i, _ in hits}
        missing = [i for i, payload in payloads.items() if payload is None]
        shard = self._reader() if missing else None
        if shard is not None:
            for record in self._call(shard.retrieve, missing, True, False):
                payload = {k: v for k, v in (record.payload or {}).items() if k not in _MUTABLE_FIELDS}
                self._payloads.put(str(record.id), payload)
                payloads[str(record.id)] = payload
        # A point deleted between the query and the retrieve is left out.
        return [Hit(i, score, payload) for i, score in hits if (payload := payloads.get(i)) is not None]

    def search_dense(
        self, vector: Sequence[float], *, limit: int, flt: IndexFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[Hit]:
        return self._query(limit, qe.Query.Nearest(dense_list(vector), using=DENSE_VECTOR), flt, fields,
                           self._dense_params())

    def search_sparse(
        self, vector: SparseVec, *, limit: int, flt: IndexFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[Hit]:
        if not vector.indices:
            return []
        return self._query(limit, qe.Query.Nearest(_sparse(vector), using=SPARSE_VECTOR), flt, fields)

    def search_hybrid(
        self,
        dense: Sequence[float],
        sparse: SparseVec,
        *,
        limit: int,
        flt: IndexFilter | None = None,
        prefetch: int = 50,
        rrf_k: int = 60,
    ) -> list[Hit]:
        limit = check_limit(limit)
        prefetch = max(int(prefetch), limit)
        f = _filter(flt)
        prefetches = [
            qe.Prefetch(
                limit=prefetch,
                query=qe.Query.Nearest(dense_list(dense), using=DENSE_VECTOR),
                params=self._dense_params(),
                filter=f,
            )
        ]
        if sparse.indices:
            prefetches.append(
                qe.Prefetch(
                    limit=prefetch,
                    query=qe.Query.Nearest(_sparse(sparse), using=SPARSE_VECTOR),
                    filter=f,
                )
            )
        return self._run(
            qe.QueryRequest(
                limit=limit,
                prefetches=prefetches,
                query=qe.Fusion.Rrf(k=int(rrf_k)),
                filter=f,
                with_payload=True,
            )
        )

    def version_ids(self) -> dict[str, int]:
        shard = self._reader()
        if shard is None:
            return {}
        total = int(self._call(shard.count, qe.CountRequest(exact=True)))
        if total == 0:
            return {}
        facet = self._call(shard.facet, qe.FacetRequest("version_id", limit=total + 1, exact=True))
        # qdrant-edge 0.9 keeps deleted values in the facet with count 0 (until reopen).
        return {str(h.value): int(h.count) for h in facet if h.count > 0}

    def count(self) -> int:
        shard = self._reader()
        if shard is None:
            return 0
        return int(self._call(shard.count, qe.CountRequest(exact=True)))

    def info(self) -> dict[str, Any]:
        """Segment / point / indexed-vector counts, for diagnostics."""
        shard = self._reader()
        if shard is None:
            return {"exists": False}
        i = self._call(shard.info)
        return {
            "exists": True,
            "segments": i.segments_count,
            "points": i.points_count,
            "indexed_vectors": i.indexed_vectors_count,
            "dim": self._dim,
            "hnsw": self.hnsw,
            "float16": self._float16,
        }

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            msg = str(exc)
            if "dimension error" in msg.lower():
                raise ValueError(msg) from exc
            if any(m in msg for m in _CLOSED_MARKERS):
                raise self._unavailable(exc) from exc
            raise


# -- conversions ---------------------------------------------------------------
def _sparse(v: SparseVec) -> qe.SparseVector:
    return qe.SparseVector([int(i) for i in v.indices], [float(x) for x in v.values])


def _point(p: ChunkPoint) -> qe.Point:
    return qe.Point(
        p.id,
        {DENSE_VECTOR: dense_list(p.dense), SPARSE_VECTOR: _sparse(p.sparse)},
        payload_dict(p.payload),
    )


def _version_filter(version_id: str) -> qe.Filter:
    return qe.Filter(must=[qe.FieldCondition("version_id", match=qe.MatchValue(str(version_id)))])


def _filter(flt: IndexFilter | None) -> qe.Filter | None:
    conds = filter_conditions(flt)
    if not conds:
        return None
    must: list[Any] = []
    for c in conds:
        if c.kind == "any":
            must.append(qe.FieldCondition(c.key, match=qe.MatchAny(list(c.values))))
        else:
            must.append(
                qe.FieldCondition(
                    c.key,
                    range=qe.RangeFloat(
                        gte=_f(c.gte), gt=_f(c.gt), lte=_f(c.lte), lt=_f(c.lt)
                    ),
                )
            )
    return qe.Filter(must=must)


def _f(x: int | None) -> float | None:
    return None if x is None else float(x)


__all__ = ["EdgeIndex"]
