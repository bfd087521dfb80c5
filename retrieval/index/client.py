"""Vector index over ``qdrant-client``: a Qdrant server, or the client's local modes.

* ``QdrantClient(url=...)`` — production (server builds HNSW in the background,
  payload indexes are used).
* ``QdrantClient(":memory:")`` — tests.
* ``QdrantClient(path=...)`` — local on-disk mode (pure Python/numpy; fine for
  tests and tiny corpora, far too slow at 100k points: see bench/index_latency.py).

Hybrid search is one ``query_points`` call: two prefetches (dense, sparse)
fused server-side with ``RrfQuery(rrf=Rrf(k=rrf_k))`` (parametrised RRF needs
a Qdrant server recent enough to know it; qdrant-client 1.20 does locally).

Connection failures become :class:`IndexUnavailable`; use :func:`open_client_index`
to also translate the "storage folder already accessed" error of local mode.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

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

DEFAULT_COLLECTION = "zhiku_chunks"
_UPSERT_BATCH = 256

try:  # grpc is an optional transport of qdrant-client
    import grpc

    _GRPC_ERRORS: tuple[type[BaseException], ...] = (grpc.RpcError,)
except ImportError:  # pragma: no cover
    _GRPC_ERRORS = ()

try:
    import httpx

    _HTTP_ERRORS: tuple[type[BaseException], ...] = (httpx.TransportError,)
except ImportError:  # pragma: no cover
    _HTTP_ERRORS = ()

_TRANSPORT_ERRORS = (ResponseHandlingException, ConnectionError, TimeoutError, *_HTTP_ERRORS, *_GRPC_ERRORS)


_EMBEDDER_KEY = "zhiku_embedder"  # collection metadata: which embedder's vectors it holds


class QdrantClientIndex:
    """:class:`~retrieval.index.base.VectorIndex` on a :class:`QdrantClient`.

    ``exact=True`` forces exact dense search (``SearchParams(exact=True)``);
    ``hnsw_ef`` sets the HNSW beam width on a server. Both are ignored by the
    client's local modes, which always scan.
    """

    def __init__(
        self,
        client: QdrantClient,
        collection: str = DEFAULT_COLLECTION,
        *,
        exact: bool = False,
        hnsw_ef: int | None = None,
        owns_client: bool = True,
    ) -> None:
        self.client = client
        self.collection = collection
        self._owns_client = owns_client
        self._lock = threading.RLock()
        self._closed = False
        if exact:
            self._params: models.SearchParams | None = models.SearchParams(exact=True)
        elif hnsw_ef is not None:
            self._params = models.SearchParams(hnsw_ef=hnsw_ef)
        else:
            self._params = None
        self._is_local = type(getattr(client, "_client", None)).__name__ == "QdrantLocal"

    def sibling(self, name: str) -> QdrantClientIndex:
        """Collection ``<collection>_<name>`` on the same client (which this index keeps owning)."""
        other = QdrantClientIndex(self.client, f"{self.collection}_{name}", owns_client=False)
        other._params = self._params
        return other

    def _read_lock(self) -> AbstractContextManager[Any]:
        # qdrant-client's local mode (numpy arrays resized in place) is not safe for
        # reads concurrent with writes; a server is.
        return self._lock if self._is_local else nullcontext()

    # -- error handling --------------------------------------------------------
    def _where(self) -> str:
        init = getattr(self.client, "init_options", None) or {}
        loc = init.get("url") or init.get("host") or init.get("path") or init.get("location")
        return f"Qdrant at {loc}" if loc else "Qdrant"

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if self._closed:
            raise IndexUnavailable(f"vector index {self.collection!r} is closed")
        try:
            yield
        except _TRANSPORT_ERRORS as exc:
            raise IndexUnavailable(
                f"{self._where()} is unreachable ({type(exc).__name__}: {exc}); "
                "start it or unset ZHIKU_QDRANT_URL to use the embedded index"
            ) from exc
        except UnexpectedResponse as exc:
            if exc.status_code in (502, 503, 504):
                raise IndexUnavailable(f"{self._where()} is unavailable: {exc}") from exc
            raise

    @staticmethod
    def _is_missing(exc: BaseException) -> bool:
        if isinstance(exc, UnexpectedResponse):
            return exc.status_code == 404
        return isinstance(exc, ValueError) and "not found" in str(exc).lower()

    # -- lifecycle -------------------------------------------------------------
    def ensure_collection(self, *, dim: int, recreate: bool = False) -> None:
        dim = int(dim)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        with self._lock, self._guard():
            if recreate and self.client.collection_exists(self.collection) and self._dim() not in (None, dim):
                self.client.delete_collection(self.collection)
            if not self.client.collection_exists(self.collection):
                try:
                    self.client.create_collection(
                        self.collection,
                        vectors_config={
                            DENSE_VECTOR: models.VectorParams(size=dim, distance=models.Distance.COSINE)
                        },
                        sparse_vectors_config={
                            SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)
                        },
                    )
                except (UnexpectedResponse, ValueError):
                    # Lost a creation race with another process? Then it exists now.
                    if not self.client.collection_exists(self.collection):
                        raise
            info = self.client.get_collection(self.collection)
            existing = self._dim(info)
            if existing is None:
                raise ValueError(f"collection {self.collection!r} has no {DENSE_VECTOR!r} vector")
            if existing != dim:
                raise ValueError(
                    f"collection {self.collection!r} has dense dim {existing}, not {dim}; "
                    "run `zhiku reindex` to rebuild it for the new embedding model"
                )
            if not self._is_local:  # local mode ignores payload indexes (and warns)
                have = set((info.payload_schema or {}).keys())
                for name in KEYWORD_FIELDS:
                    if name not in have:
                        self.client.create_payload_index(
                            self.collection, name, models.PayloadSchemaType.KEYWORD, wait=True
                        )
                for name in INTEGER_FIELDS:
                    if name not in have:
                        self.client.create_payload_index(
                            self.collection, name, models.PayloadSchemaType.INTEGER, wait=True
                        )

    def _dim(self, info: Any = None) -> int | None:
        info = info or self.client.get_collection(self.collection)
        vectors = info.config.params.vectors
        dense = vectors.get(DENSE_VECTOR) if isinstance(vectors, dict) else None
        return None if dense is None else int(dense.size)

    def embedder(self) -> str | None:
        with self._guard():
            if not self.client.collection_exists(self.collection):
                return None
            metadata = self.client.get_collection(self.collection).config.metadata or {}
        name = metadata.get(_EMBEDDER_KEY)
        return str(name) if name else None

    def set_embedder(self, name: str) -> None:
        with self._lock, self._guard():
            self.client.update_collection(self.collection, metadata={_EMBEDDER_KEY: str(name)})

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._owns_client:
                self.client.close()

    def __enter__(self) -> QdrantClientIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------
    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        if not points:
            return
        with self._lock, self._guard():
            for start in range(0, len(points), _UPSERT_BATCH):
                batch = [
                    models.PointStruct(
                        id=p.id,
                        vector={DENSE_VECTOR: dense_list(p.dense), SPARSE_VECTOR: _sparse(p.sparse)},
                        payload=payload_dict(p.payload),
                    )
                    for p in points[start : start + _UPSERT_BATCH]
                ]
                self.client.upsert(self.collection, points=batch, wait=True)

    def set_valid_to(self, *, version_id: str, valid_to: int) -> int:
        flt = _version_filter(version_id)
        with self._lock, self._guard():
            n = self.client.count(self.collection, count_filter=flt, exact=True).count
            if n:
                self.client.set_payload(
                    self.collection, payload={"valid_to": int(valid_to)}, points=flt, wait=True
                )
            return int(n)

    def delete_version(self, *, version_id: str) -> None:
        with self._lock, self._guard():
            self.client.delete(
                self.collection,
                points_selector=models.FilterSelector(filter=_version_filter(version_id)),
                wait=True,
            )

    def optimize(self) -> None:
        """No-op: a server optimises in the background; local mode has nothing to build."""

    # -- reads -----------------------------------------------------------------
    def _query(self, fields: Sequence[str] | None = None, **kwargs: Any) -> list[Hit]:
        with self._read_lock(), self._guard():
            try:
                res = self.client.query_points(self.collection, with_payload=list(fields) if fields else True, **kwargs)
            except (UnexpectedResponse, ValueError) as exc:
                if self._is_missing(exc):
                    return []
                raise
        return [Hit(str(p.id), float(p.score), p.payload or {}) for p in res.points]

    def search_dense(
        self, vector: Sequence[float], *, limit: int, flt: IndexFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[Hit]:
        return self._query(
            fields,
            query=dense_list(vector),
            using=DENSE_VECTOR,
            limit=check_limit(limit),
            query_filter=_filter(flt),
            search_params=self._params,
        )

    def search_sparse(
        self, vector: SparseVec, *, limit: int, flt: IndexFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[Hit]:
        if not vector.indices:
            return []
        return self._query(
            fields,
            query=_sparse(vector),
            using=SPARSE_VECTOR,
            limit=check_limit(limit),
            query_filter=_filter(flt),
        )

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
            models.Prefetch(
                query=dense_list(dense), using=DENSE_VECTOR, limit=prefetch, filter=f, params=self._params
            )
        ]
        if sparse.indices:
            prefetches.append(
                models.Prefetch(query=_sparse(sparse), using=SPARSE_VECTOR, limit=prefetch, filter=f)
            )
        return self._query(
            prefetch=prefetches,
            query=models.RrfQuery(rrf=models.Rrf(k=int(rrf_k))),
            limit=limit,
            query_filter=f,
        )

    def version_ids(self) -> dict[str, int]:
        total = self.count()
        if total == 0:
            return {}
        with self._read_lock(), self._guard():
            res = self.client.facet(self.collection, key="version_id", limit=total + 1, exact=True)
        return {str(h.value): int(h.count) for h in res.hits}

    def count(self) -> int:
        with self._read_lock(), self._guard():
            try:
                return int(self.client.count(self.collection, exact=True).count)
            except (UnexpectedResponse, ValueError) as exc:
                if self._is_missing(exc):
                    return 0
                raise


def open_client_index(
    *,
    url: str | None = None,
    path: str | None = None,
    collection: str = DEFAULT_COLLECTION,
    api_key: str | None = None,
    timeout: int = 10,
    check_compatibility: bool = True,
    **index_kwargs: Any,
) -> QdrantClientIndex:
    """Build a client (server ``url``, local ``path`` or in-memory) and wrap it.

    Translates a locked local storage folder into :class:`IndexUnavailable`.
    A server that is down is not an error here (qdrant-client only warns when
    its version check fails); the first call then raises IndexUnavailable.
    """
    try:
        if url:
            client = QdrantClient(
                url=url, api_key=api_key, timeout=timeout, check_compatibility=check_compatibility
            )
        elif path:
            client = QdrantClient(path=path)
        else:
            client = QdrantClient(":memory:")
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise IndexUnavailable(
                f"local Qdrant storage {path} is used by another process; stop the other zhiku "
                "server or point ZHIKU_QDRANT_URL at a Qdrant server"
            ) from exc
        raise
    return QdrantClientIndex(client, collection, **index_kwargs)


# -- conversions -----------------------------------------------------------------
def _sparse(v: SparseVec) -> models.SparseVector:
    return models.SparseVector(indices=[int(i) for i in v.indices], values=[float(x) for x in v.values])


def _version_filter(version_id: str) -> models.Filter:
    return models.Filter(
        must=[models.FieldCondition(key="version_id", match=models.MatchValue(value=str(version_id)))]
    )


def _filter(flt: IndexFilter | None) -> models.Filter | None:
    conds = filter_conditions(flt)
    if not conds:
        return None
    must: list[Any] = []
    for c in conds:
        if c.kind == "any":
            must.append(models.FieldCondition(key=c.key, match=models.MatchAny(any=list(c.values))))
        else:
            must.append(
                models.FieldCondition(key=c.key, range=models.Range(gte=c.gte, gt=c.gt, lte=c.lte, lt=c.lt))
            )
    return models.Filter(must=must)


__all__ = ["QdrantClientIndex", "open_client_index", "DEFAULT_COLLECTION"]
