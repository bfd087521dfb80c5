"""Backend-neutral types of the vector index layer.

Pure module: it imports no vector-store backend, so callers (and their tests)
can depend on these types without pulling in qdrant-edge or qdrant-client.

One *chunk point* is one chunk of one version of a knowledge-base entry. It
carries a dense embedding (named vector ``dense``, cosine distance), a sparse
BM25-style term-frequency vector (named vector ``sparse``; the engine applies
IDF itself) and a payload with the keys listed in :data:`PAYLOAD_KEYS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from kb.errors import Unavailable

#: ``valid_to`` of a version that is open-ended (9999-12-31T23:59:59Z).
OPEN_END: int = 253402300799

#: Name of the dense named vector (cosine distance).
DENSE_VECTOR: str = "dense"
#: Name of the sparse named vector (IDF modifier on).
SPARSE_VECTOR: str = "sparse"

#: Payload keys every chunk point carries.
PAYLOAD_KEYS: tuple[str, ...] = (
    "entry_id",  # str
    "version_id",  # str
    "version",  # int
    "chunk",  # int, 0-based position of the chunk inside the version
    "category",  # str
    "product_type",  # str | None
    "tags",  # list[str]
    "valid_from",  # int, epoch seconds, inclusive
    "valid_to",  # int, epoch seconds, exclusive; OPEN_END when open
    "title",  # str
    "text",  # str
)

#: Payload fields that get a keyword index (where the backend supports it).
KEYWORD_FIELDS: tuple[str, ...] = ("category", "product_type", "tags", "entry_id", "version_id")
#: Payload fields that get an integer (range) index.
INTEGER_FIELDS: tuple[str, ...] = ("valid_from", "valid_to")


@dataclass(frozen=True, slots=True)
class SparseVec:
    """Sparse vector: parallel tuples of term ids and weights."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise ValueError(
                f"SparseVec: {len(self.indices)} indices but {len(self.values)} values"
            )

    @classmethod
    def from_dict(cls, weights: Mapping[int, float]) -> SparseVec:
        """Build from ``{term_id: weight}``, sorted by term id."""
        items = sorted(weights.items())
        return cls(tuple(int(i) for i, _ in items), tuple(float(w) for _, w in items))

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True, slots=True)
class ChunkPoint:
    """One point to upsert. ``id`` is a UUID string (any canonical UUID form)."""

    id: str
    dense: Sequence[float]
    sparse: SparseVec
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class IndexFilter:
    """Conjunction of conditions; an empty tuple / ``None`` means "no condition".

    Within one field the values are OR-ed (``tags`` too: any-of). ``valid_at``
    keeps points with ``valid_from <= valid_at < valid_to``.
    """

    categories: tuple[str, ...] = ()
    product_types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    entry_ids: tuple[str, ...] = ()
    valid_at: int | None = None

    def is_empty(self) -> bool:
        return not (
            self.categories
            or self.product_types
            or self.tags
            or self.entry_ids
            or self.valid_at is not None
        )


@dataclass(frozen=True, slots=True)
class Condition:
    """Backend-neutral single condition, produced by :func:`filter_conditions`.

    ``kind == "any"``: payload ``key`` equals one of ``values`` (for an array
    field: shares at least one element). ``kind == "range"``: integer payload
    ``key`` satisfies the given bounds (``gte`` inclusive, ``lt``/``gt``/``lte``).
    """

    kind: Literal["any", "range"]
    key: str
    values: tuple[str, ...] = ()
    gte: int | None = None
    gt: int | None = None
    lte: int | None = None
    lt: int | None = None


def filter_conditions(flt: IndexFilter | None) -> list[Condition]:
    """Translate an :class:`IndexFilter` into a list of AND-ed conditions."""
    if flt is None:
        return []
    conds: list[Condition] = []
    for key, values in (
        ("category", flt.categories),
        ("product_type", flt.product_types),
        ("tags", flt.tags),
        ("entry_id", flt.entry_ids),
    ):
        if isinstance(values, str):  # a lone string is a classic mistake: ("a") == "a"
            values = (values,)
        if values:
            conds.append(Condition("any", key, tuple(str(v) for v in values)))
    if flt.valid_at is not None:
        t = int(flt.valid_at)
        conds.append(Condition("range", "valid_from", lte=t))
        conds.append(Condition("range", "valid_to", gt=t))
    return conds


@dataclass(frozen=True, slots=True)
class Hit:
    """A search result; ``payload`` is always the full stored payload."""

    id: str
    score: float
    payload: Mapping[str, Any] = field(default_factory=dict)


class IndexUnavailable(Unavailable):
    """The backend cannot be opened or reached (shard locked, server down, ...); a 503 with its message."""


@runtime_checkable
class VectorIndex(Protocol):
    """What the retrieval layer needs from a vector store."""

    def ensure_collection(self, *, dim: int, recreate: bool = False) -> None:
        """Create the collection/shard if missing. Idempotent; ValueError on dim mismatch — unless
        `recreate`, which drops a collection of another dimension and makes it anew (empty: a full
        rebuild follows, `Indexer.apply`)."""
        ...

    def embedder(self) -> str | None:
        """The name of the embedder whose vectors the index holds (recorded by the indexer); None when
        none is recorded (a new index, or one from before recording)."""
        ...

    def set_embedder(self, name: str) -> None:
        """Record which embedder's vectors the index holds (the collection must exist)."""
        ...

    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        """Insert or replace points; idempotent by id."""
        ...

    def set_valid_to(self, *, version_id: str, valid_to: int) -> int:
        """Set ``valid_to`` on every chunk of a version; returns the points touched."""
        ...

    def delete_version(self, *, version_id: str) -> None:
        """Delete every chunk point of a version."""
        ...

    def search_dense(
        self, vector: Sequence[float], *, limit: int, flt: IndexFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[Hit]:
        """Nearest chunks by the dense vector; `fields` limits the payload returned (default: all)."""
        ...

    def search_sparse(
        self, vector: SparseVec, *, limit: int, flt: IndexFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[Hit]: ...

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
        """Server-side prefetch of both vectors, fused with RRF (score = sum 1/(k+rank))."""
        ...

    def version_ids(self) -> dict[str, int]:
        """``version_id -> number of chunk points`` (drift checks against the DB)."""
        ...

    def sibling(self, name: str) -> VectorIndex:
        """Another index of the same kind beside this one (the embedded shard's neighbour folder, or
        another collection on the same server), for points of another kind: entry names."""
        ...

    def count(self) -> int: ...

    def optimize(self) -> None:
        """Build indexes / merge segments; no-op where not applicable."""
        ...

    def close(self) -> None: ...


def dense_list(vector: Sequence[float]) -> list[float]:
    """A dense vector (list, tuple, numpy array) as a plain list of floats."""
    tolist = getattr(vector, "tolist", None)
    if tolist is not None:
        out = tolist()
        if isinstance(out, list):
            return [float(x) for x in out] if out and not isinstance(out[0], float) else out
    return [float(x) for x in vector]


def payload_dict(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Payload as a plain JSON-able dict: tags as a list, ``valid_to`` defaulting to OPEN_END."""
    out = dict(payload)
    out.setdefault("valid_to", OPEN_END)
    tags = out.get("tags")
    if tags is not None and not isinstance(tags, list):
        out["tags"] = list(tags)
    return out


def check_limit(limit: int) -> int:
    if int(limit) < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return int(limit)


__all__ = [
    "OPEN_END",
    "DENSE_VECTOR",
    "SPARSE_VECTOR",
    "PAYLOAD_KEYS",
    "KEYWORD_FIELDS",
    "INTEGER_FIELDS",
    "SparseVec",
    "ChunkPoint",
    "IndexFilter",
    "Condition",
    "filter_conditions",
    "Hit",
    "IndexUnavailable",
    "VectorIndex",
    "dense_list",
    "payload_dict",
    "check_limit",
]
