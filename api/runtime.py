"""The running parts of one Zhiku process, opened once and shared by the HTTP app, the CLI and the
evaluation: database engine, vector index, embedder, analyzer, indexer and searcher."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from ingestion.indexer import Indexer
from ingestion.worker import OutboxWorker
from kb import service
from kb.db import current_revision, make_engine
from kb.errors import Unavailable
from kb.models import OutboxEvent
from kb.timeutil import utcnow
from kb.settings import Settings
from retrieval.embedding import Embedder, SentenceTransformerEmbedder
from retrieval.index.base import VectorIndex
from retrieval.search import Association, Associations, Searcher
from retrieval.text import Analyzer


def open_index(settings: Settings) -> VectorIndex:
    """The embedded engine under the data directory, or a Qdrant server when ZHIKU_QDRANT_URL is set."""
    if settings.qdrant_url:
        from qdrant_client import QdrantClient

        from retrieval.index.client import QdrantClientIndex

        return QdrantClientIndex(QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, timeout=10))
    from retrieval.index.edge import EdgeIndex

    return EdgeIndex(settings.index_path)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    _embedder: Embedder | None = None
    _index: VectorIndex | None = None
    _analyzer: Analyzer | None = None
    _searcher: Searcher | None = None
    _worker: OutboxWorker | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def open(cls, settings: Settings, *, require_schema: bool = True, embedder: Embedder | None = None,
             index: VectorIndex | None = None) -> Runtime:
        """Open the database (refusing an unmigrated one); index and model open on first use."""
        engine = make_engine(settings.resolved_database_url)
        if require_schema and current_revision(engine) is None:
            engine.dispose()
            raise Unavailable("数据库未初始化 database not initialised: run `zhiku db upgrade` first")
        return cls(settings=settings, engine=engine, _embedder=embedder, _index=index)

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = SentenceTransformerEmbedder(self.settings.model_path)
            return self._embedder

    @property
    def index(self) -> VectorIndex:
        with self._lock:
            if self._index is None:
                self._index = open_index(self.settings)
            return self._index

    @property
    def analyzer(self) -> Analyzer:
        with self._lock:
            if self._analyzer is None:
                self._analyzer = Analyzer()
            return self._analyzer

    @property
    def indexer(self) -> Indexer:
        return Indexer(index=self.index, embedder=self.embedder, analyzer=self.analyzer)

    @property
    def searcher(self) -> Searcher:
        with self._lock:
            if self._searcher is None:
                self._searcher = Searcher(index=self.index, embedder=self.embedder, analyzer=self.analyzer)
                self.refresh_knowledge()
            return self._searcher

    @property
    def worker(self) -> OutboxWorker:
        """The outbox worker; publishing due packs and SLA escalation run on its tick."""
        from review_workflow import service as workflow

        with self._lock:
            if self._worker is None:
                def tick(session: Session, now) -> None:  # type: ignore[no-untyped-def]
                    workflow.publish_due(session=session, now=now)
                    workflow.escalate_overdue(session=session, now=now)

                def after_batch(session: Session, pack_ids: set[str], now) -> None:  # type: ignore[no-untyped-def]
                    workflow.mark_searchable(session=session, pack_ids=pack_ids, now=now)

                self._worker = OutboxWorker(engine=self.engine, indexer=self.indexer, tick=tick,
                                            after_batch=after_batch, on_change=self.refresh_knowledge)
            return self._worker

    def warm_up(self) -> None:
        """Load the embedding model and the search vocabulary once, before serving."""
        warm = getattr(self.embedder, "warm_up", None)
        if warm is not None:
            warm()
        _ = self.searcher

    def wake_worker(self) -> None:
        """A change was committed: let a running worker index it now rather than at its next poll."""
        if self._worker is not None:
            self._worker.notify()

    def drain_outbox(self) -> int:
        """Apply every pending index change now (CLI, tests); returns events applied."""
        self.refresh_knowledge()
        return self.worker.drain()

    def refresh_knowledge(self) -> None:
        """Reload what search learns from the knowledge base: vocabulary and expert links."""
        with Session(self.engine) as session:
            current = service.current_versions(session=session)
        analyzer = self.analyzer
        words: list[str] = []
        links = {}
        for entry_id, v in current.items():
            words.extend([*v.synonyms, *v.tags] + ([v.title] if v.category == "product" else []))
            links[entry_id] = Association(v.title, tuple(v.related), tuple(v.synonyms))
        analyzer.add_words(words)
        if self._searcher is not None:
            self._searcher.associations = Associations(links)

    def sync_index(self, *, rebuild: bool = False, progress=None):  # type: ignore[no-untyped-def]
        """Bring the whole index in line with the database (missing versions, validity windows).

        Outbox rows written before the sync started are satisfied by it and marked processed."""
        self.refresh_knowledge()
        with Session(self.engine, expire_on_commit=False) as session:
            last = session.exec(select(func.max(OutboxEvent.id))).one()
            windows = service.all_windows(session=session)
            session.commit()
        report = self.indexer.apply(windows, full=True, rebuild=rebuild, progress=progress)
        if last is not None:
            with Session(self.engine) as session:
                session.execute(update(OutboxEvent).where(col(OutboxEvent.id) <= last, col(OutboxEvent.processed_at).is_(None))
                                .values(processed_at=utcnow()))
                session.commit()
        return report

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        if self._index is not None:
            self._index.close()
        self.engine.dispose()
