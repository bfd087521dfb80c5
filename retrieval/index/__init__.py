"""Vector index layer: one protocol, two Qdrant backends.

* :class:`~retrieval.index.edge.EdgeIndex` — embedded qdrant-edge shard (default).
* :class:`~retrieval.index.client.QdrantClientIndex` — Qdrant server via qdrant-client
  (also its ``:memory:`` / ``path=`` local modes, for tests).

The backends are imported lazily so that importing the types never loads a backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    OPEN_END,
    ChunkPoint,
    Hit,
    IndexFilter,
    IndexUnavailable,
    SparseVec,
    VectorIndex,
)

if TYPE_CHECKING:
    from .client import QdrantClientIndex
    from .edge import EdgeIndex

__all__ = [
    "OPEN_END",
    "ChunkPoint",
    "Hit",
    "IndexFilter",
    "IndexUnavailable",
    "SparseVec",
    "VectorIndex",
    "EdgeIndex",
    "QdrantClientIndex",
]


def __getattr__(name: str) -> Any:
    if name == "EdgeIndex":
        from .edge import EdgeIndex

        return EdgeIndex
    if name == "QdrantClientIndex":
        from .client import QdrantClientIndex

        return QdrantClientIndex
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
