"""Write versions into the vector index: chunk → embed → sparse → upsert, with validity windows;
`sync` makes the index match the database, `check` reports drift."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlmodel import Session

from ingestion.chunking import DEFAULT_CHUNK_CHARS, chunk_version, entry_names
from kb import service
from kb.errors import Unavailable
from kb.models import EntryVersion
from kb.timeutil import epoch
from retrieval.embedding import Embedder, same_vectors
from retrieval.index.base import OPEN_END, ChunkPoint, VectorIndex
from retrieval.text import Analyzer

POINT_NAMESPACE = uuid.UUID("7b0c7f1e-4f4e-4f7a-9a53-6b6e7a686b75")
Progress = Callable[[int], None]
UNRECORDED = "未记录的编码器 an unrecorded embedder"


def point_id(version_id: str, chunk: int) -> str:
    """Deterministic point id: re-indexing the same chunk overwrites, never duplicates."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{version_id}:{chunk}"))


def name_point_id(version_id: str, name: int) -> str:
    """Deterministic id of a version's name point (never equal to one of its chunk ids)."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{version_id}:name:{name}"))


def _content(version: EntryVersion) -> dict:
    return {name: getattr(version, name) for name in ("title", "summary", "synonyms", "facts", "body")}


@dataclass(frozen=True)
class SyncReport:
    versions_indexed: int
    points_written: int
    windows_updated: int
    versions_removed: int
    versions_named: int = 0  # versions whose names alone were (re)written (a store from before names)
    replaced_embedder: str | None = None  # the index held another embedder's vectors: all were re-embedded


@dataclass(frozen=True)
class DriftReport:
    missing: list[str]  # version ids in the DB (with a non-empty window) but not in the index
    extra: list[str]  # version ids in the index but not in the DB
    partial: list[str]  # version ids whose chunk count differs
    other_embedder: str | None = None  # the index holds another embedder's vectors (`zhiku reindex` re-embeds)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.partial or self.other_embedder)


class Indexer:
    """Turns entry versions into index points; one instance per process, shared by writers.

    Each version gets its chunk points in `index` and, when a `names` index is given, one point per
    name (title, synonym, summary; embedded as queries) there — same ids scheme, same payload keys and
    validity windows, so filters and drift checks treat both alike."""

    def __init__(self, *, index: VectorIndex, embedder: Embedder, analyzer: Analyzer, names: VectorIndex | None = None,
                 chunk_chars: int = DEFAULT_CHUNK_CHARS, batch_size: int = 64) -> None:
        self.index, self.names, self.embedder, self.analyzer = index, names, embedder, analyzer
        self.chunk_chars, self.batch_size = chunk_chars, batch_size

    @property
    def indexes(self) -> list[VectorIndex]:
        return [self.index] if self.names is None else [self.index, self.names]

    def ensure_ready(self, *, recreate: bool = False) -> None:
        """Create the collections (`recreate`: remake one of another dimension, for a full rebuild); an
        empty one records the embedder whose vectors it will hold."""
        for index in self.indexes:
            index.ensure_collection(dim=self.embedder.dim, recreate=recreate)
            recorded = index.embedder()
            if recorded != self.embedder.name and (index.count() == 0 or same_vectors(recorded, self.embedder.name)):
                index.set_embedder(self.embedder.name)

    def other_embedder(self) -> str | None:
        """What built the index when it is not this embedder: its recorded name, or «unrecorded» for
        points from before recording (vectors of unknown origin are treated as another embedder's)."""
        for index in self.indexes:
            recorded = index.embedder()
            if same_vectors(recorded, self.embedder.name) or index.count() == 0:  # an empty index mixes nothing
                continue
            return recorded or UNRECORDED
        return None

    def require_own_vectors(self) -> None:
        """Refuse to work on an index holding another embedder's vectors (a changed ZHIKU_ENCODER or model):
        its scores would mean nothing and new points would mix two vector spaces. A record from before
        fingerprints is brought up to date."""
        other = self.other_embedder()
        if other is not None:
            raise self._refusal(other)
        for index in self.indexes:
            if index.count() and index.embedder() != self.embedder.name:
                index.set_embedder(self.embedder.name)

    def _refusal(self, other: str) -> Unavailable:
        return Unavailable(f"向量索引由 {other} 生成，当前编码器为 {self.embedder.name} — run `zhiku reindex` to "
                           "re-embed the index with the configured encoder (ZHIKU_ENCODER)")

    def points(self, windows: Iterable[service.Window]) -> list[ChunkPoint]:
        """Embed and build the chunk points of the given version windows."""
        planned = [(w, point_id(w.version.id, chunk.number), chunk.number, chunk.text) for w in windows
                   for chunk in chunk_version(_content(w.version), max_chars=self.chunk_chars)]
        if not planned:
            return []
        return self._build(planned, self.embedder.encode_passages([text for *_, text in planned]))

    def name_points(self, windows: Iterable[service.Window]) -> list[ChunkPoint]:
        """Embed (as queries) and build the name points of the given version windows."""
        planned = [(w, name_point_id(w.version.id, number), number, name) for w in windows
                   for number, name in enumerate(entry_names(_content(w.version)))]
        if not planned:
            return []
        return self._build(planned, self.embedder.encode_queries([text for *_, text in planned]))

    def _build(self, planned: list[tuple[service.Window, str, int, str]], dense) -> list[ChunkPoint]:  # type: ignore[no-untyped-def]
        points = []
        for (window, pid, number, text), vector in zip(planned, dense, strict=True):
            version = window.version
            points.append(ChunkPoint(
                id=pid,
                dense=vector.tolist(),
                sparse=self.analyzer.document_vector(text),
                payload={
                    "entry_id": version.entry_id, "version_id": version.id, "version": version.number,
                    "chunk": number, "category": version.category, "product_type": version.product_type,
                    "tags": list(version.tags), "valid_from": epoch(window.start, 0),
                    "valid_to": epoch(window.end, OPEN_END), "title": version.title, "text": text,
                },
            ))
        return points

    def index_windows(self, windows: list[service.Window], *, progress: Progress | None = None,
                      chunks: bool = True, names: bool = True) -> int:
        """Upsert the points of these versions in batches (chunks, names or both); returns points written."""
        written = 0
        for start in range(0, len(windows), self.batch_size):
            batch = windows[start : start + self.batch_size]
            if chunks:
                points = self.points(batch)
                self.index.upsert(points)
                written += len(points)
            if names and self.names is not None:
                self.names.upsert(self.name_points(batch))
            if progress:
                progress(len(batch))
        return written

    def apply(self, windows: list[service.Window], *, full: bool = False, rebuild: bool = False,
              progress: Progress | None = None) -> SyncReport:
        """Make the index agree with these windows: embed versions it lacks (all, with `rebuild`) and
        refresh the validity of the others. `full` means the windows are the whole database, so index
        points of versions not among them are removed. Touches no database: callers read the windows
        in a short transaction and embed outside it. A names index that lacks versions the chunk index
        has (a store from before names were indexed) gets just their names. An index holding another
        embedder's vectors is re-embedded whole (`full` only: a part would mix two vector spaces), in
        collections made anew if its vectors had another dimension."""
        replaced = self.other_embedder()
        if replaced is not None and not full:
            raise self._refusal(replaced)
        rebuild = rebuild or replaced is not None
        self.ensure_ready(recreate=full and rebuild)
        present = [index.version_ids() for index in self.indexes]
        removed = 0
        if full:
            wanted = {w.version.id for w in windows}
            stale = set().union(*present) - wanted
            for version_id in stale:
                for index in self.indexes:
                    index.delete_version(version_id=version_id)
            removed = len(set(present[0]) - wanted)
        todo = [w for w in windows if rebuild or w.version.id not in present[0]]
        written = self.index_windows(todo, progress=progress)
        fresh = {w.version.id for w in todo}  # written just now with their current windows
        unnamed = [] if self.names is None else [
            w for w in windows if w.version.id not in fresh and w.version.id not in present[1]]
        self.index_windows(unnamed, chunks=False)
        named_now = fresh | {w.version.id for w in unnamed}
        updated = 0
        for window in windows:
            valid_to = epoch(window.end, OPEN_END)
            if window.version.id not in fresh:
                updated += bool(self.index.set_valid_to(version_id=window.version.id, valid_to=valid_to))
            if self.names is not None and window.version.id not in named_now:
                self.names.set_valid_to(version_id=window.version.id, valid_to=valid_to)
        if replaced is not None:
            for index in self.indexes:
                index.set_embedder(self.embedder.name)
        return SyncReport(len(todo), written, updated, removed, len(unnamed), replaced)

    def check(self, *, session: Session) -> DriftReport:
        """Compare the versions (and their chunk and name counts) in the database and in the index."""
        windows = service.all_windows(session=session)
        expected = [{w.version.id: len(chunk_version(_content(w.version), max_chars=self.chunk_chars)) for w in windows}]
        if self.names is not None:
            expected.append({w.version.id: len(entry_names(_content(w.version))) for w in windows})
        missing: set[str] = set()
        extra: set[str] = set()
        partial: set[str] = set()
        for index, counts in zip(self.indexes, expected, strict=True):
            present = index.version_ids()
            missing |= {v for v in counts if v not in present}
            extra |= {v for v in present if v not in counts}
            partial |= {v for v, n in counts.items() if v in present and present[v] != n}
        return DriftReport(sorted(missing), sorted(extra), sorted(partial - missing), self.other_embedder())
