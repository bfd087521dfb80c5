"""Write versions into the vector index: chunk → embed → sparse → upsert, with validity windows;
`sync` makes the index match the database, `check` reports drift."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlmodel import Session

from ingestion.chunking import DEFAULT_CHUNK_CHARS, chunk_version
from kb import service
from kb.models import EntryVersion
from kb.timeutil import epoch
from retrieval.embedding import Embedder
from retrieval.index.base import OPEN_END, ChunkPoint, VectorIndex
from retrieval.text import Analyzer

POINT_NAMESPACE = uuid.UUID("7b0c7f1e-4f4e-4f7a-9a53-6b6e7a686b75")
Progress = Callable[[int], None]


def point_id(version_id: str, chunk: int) -> str:
    """Deterministic point id: re-indexing the same chunk overwrites, never duplicates."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{version_id}:{chunk}"))


def _content(version: EntryVersion) -> dict:
    return {name: getattr(version, name) for name in ("title", "summary", "synonyms", "facts", "body")}


@dataclass(frozen=True)
class SyncReport:
    versions_indexed: int
    points_written: int
    windows_updated: int
    versions_removed: int


@dataclass(frozen=True)
class DriftReport:
    missing: list[str]  # version ids in the DB (with a non-empty window) but not in the index
    extra: list[str]  # version ids in the index but not in the DB
    partial: list[str]  # version ids whose chunk count differs

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.partial)


class Indexer:
    """Turns entry versions into index points; one instance per process, shared by writers."""

    def __init__(self, *, index: VectorIndex, embedder: Embedder, analyzer: Analyzer,
                 chunk_chars: int = DEFAULT_CHUNK_CHARS, batch_size: int = 64) -> None:
        self.index, self.embedder, self.analyzer = index, embedder, analyzer
        self.chunk_chars, self.batch_size = chunk_chars, batch_size

    def ensure_ready(self) -> None:
        self.index.ensure_collection(dim=self.embedder.dim)

    def points(self, windows: Iterable[service.Window]) -> list[ChunkPoint]:
        """Embed and build the points of the given version windows."""
        planned = []
        for window in windows:
            version = window.version
            for chunk in chunk_version(_content(version), max_chars=self.chunk_chars):
                planned.append((window, chunk))
        if not planned:
            return []
        dense = self.embedder.encode_passages([chunk.text for _, chunk in planned])
        points = []
        for (window, chunk), vector in zip(planned, dense, strict=True):
            version = window.version
            points.append(ChunkPoint(
                id=point_id(version.id, chunk.number),
                dense=vector.tolist(),
                sparse=self.analyzer.document_vector(chunk.text),
                payload={
                    "entry_id": version.entry_id, "version_id": version.id, "version": version.number,
                    "chunk": chunk.number, "category": version.category, "product_type": version.product_type,
                    "tags": list(version.tags), "valid_from": epoch(window.start, 0),
                    "valid_to": epoch(window.end, OPEN_END), "title": version.title, "text": chunk.text,
                },
            ))
        return points

    def index_windows(self, windows: list[service.Window], *, progress: Progress | None = None) -> int:
        """Upsert the points of these versions in batches; returns points written."""
        written = 0
        for start in range(0, len(windows), self.batch_size):
            batch = windows[start : start + self.batch_size]
            points = self.points(batch)
            self.index.upsert(points)
            written += len(points)
            if progress:
                progress(len(batch))
        return written

    def apply(self, windows: list[service.Window], *, full: bool = False, rebuild: bool = False,
              progress: Progress | None = None) -> SyncReport:
        """Make the index agree with these windows: embed versions it lacks (all, with `rebuild`) and
        refresh the validity of the others. `full` means the windows are the whole database, so index
        points of versions not among them are removed. Touches no database: callers read the windows
        in a short transaction and embed outside it."""
        self.ensure_ready()
        present = self.index.version_ids()
        removed = 0
        if full:
            wanted = {w.version.id for w in windows}
            for version_id in set(present) - wanted:
                self.index.delete_version(version_id=version_id)
                removed += 1
        todo = [w for w in windows if rebuild or w.version.id not in present]
        written = self.index_windows(todo, progress=progress)
        fresh = {w.version.id for w in todo}
        updated = 0
        for window in windows:
            if window.version.id not in fresh:
                updated += bool(self.index.set_valid_to(version_id=window.version.id, valid_to=epoch(window.end, OPEN_END)))
        return SyncReport(len(todo), written, updated, removed)

    def check(self, *, session: Session) -> DriftReport:
        """Compare the versions (and their chunk counts) in the database and in the index."""
        windows = service.all_windows(session=session)
        present = self.index.version_ids()
        expected = {w.version.id: len(chunk_version(_content(w.version), max_chars=self.chunk_chars)) for w in windows}
        missing = sorted(v for v in expected if v not in present)
        extra = sorted(v for v in present if v not in expected)
        partial = sorted(v for v, n in expected.items() if v in present and present[v] != n)
        return DriftReport(missing, extra, partial)

