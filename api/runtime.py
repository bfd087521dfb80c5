"""The running parts of one Zhiku process, opened once and shared by the HTTP app, the CLI and the
evaluation: database engine, vector index, embedder, analyzer, indexer and searcher."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy import event, func, update
from sqlmodel import Session, col, select

from ingestion.indexer import Indexer
from ingestion.worker import OutboxWorker
from kb import service
from kb.db import current_revision, make_engine
from kb.errors import Unavailable
from kb.models import OutboxEvent
from kb.timeutil import utcnow
from kb.settings import Settings
from retrieval.embedding import BatchingEmbedder, Embedder, SentenceTransformerEmbedder, encoder_for
from retrieval.index.base import VectorIndex
from retrieval.search import Association, Associations, Searcher
from retrieval.text import Analyzer
from retrieval.topics import EntryProfile, TopicConfig, TopicTracker
from retrieval import conversations
from retrieval.conversations import ChangeWatcher, Coalescer
from api.live import LiveHub


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
    _names: VectorIndex | None = None
    _analyzer: Analyzer | None = None
    _searcher: Searcher | None = None
    _worker: OutboxWorker | None = None
    _tracker: TopicTracker | None = None
    live: LiveHub = field(default_factory=LiveHub)
    coalescer: Coalescer = field(init=False)
    watcher: ChangeWatcher = field(default_factory=ChangeWatcher)
    _profiles: dict[str, EntryProfile] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.coalescer = Coalescer(lanes=self.settings.live_lanes)

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
                encoder = encoder_for(self.settings.encoder, self.index.embedder())
                self._embedder = BatchingEmbedder(SentenceTransformerEmbedder(
                    self.settings.model_path, query_batch_size=64, encoder=encoder))
            return self._embedder

    @property
    def index(self) -> VectorIndex:
        with self._lock:
            if self._index is None:
                self._index = open_index(self.settings)
            return self._index

    @property
    def names(self) -> VectorIndex:
        """Entry names (title, synonyms, summary) as question-like vectors, beside the chunk index."""
        with self._lock:
            if self._names is None:
                self._names = self.index.sibling("names")
            return self._names

    @property
    def analyzer(self) -> Analyzer:
        with self._lock:
            if self._analyzer is None:
                self._analyzer = Analyzer()
            return self._analyzer

    @property
    def indexer(self) -> Indexer:
        return Indexer(index=self.index, names=self.names, embedder=self.embedder, analyzer=self.analyzer)

    @property
    def searcher(self) -> Searcher:
        with self._lock:
            if self._searcher is None:
                self._searcher = Searcher(index=self.index, names=self.names, embedder=self.embedder,
                                          analyzer=self.analyzer)
                self.refresh_knowledge()
            return self._searcher

    @property
    def profiles(self) -> dict[str, EntryProfile]:
        """What topic tracking knows of each entry in force (refreshed with the vocabulary)."""
        _ = self.searcher
        return self._profiles

    @property
    def topic_tracker(self) -> TopicTracker:
        """Decides the cards of live conversations (shares the searcher)."""
        with self._lock:
            if self._tracker is None:
                searcher = self.searcher
                self._tracker = TopicTracker(searcher=searcher, config=TopicConfig(max_cards=self.settings.max_cards))
                self._tracker.set_knowledge(self._profiles)
            return self._tracker

    @property
    def worker(self) -> OutboxWorker:
        """The outbox worker; publishing due packs and SLA escalation run on its tick."""
        from review_workflow import service as workflow

        with self._lock:
            if self._worker is None:
                def tick(session: Session, now) -> None:  # type: ignore[no-untyped-def]
                    workflow.publish_due(session=session, now=now)
                    workflow.escalate_overdue(session=session, now=now)
                    self.refresh_live_cards(session=session, now=now)

                def after_batch(session: Session, pack_ids: set[str], now) -> None:  # type: ignore[no-untyped-def]
                    workflow.mark_searchable(session=session, pack_ids=pack_ids, now=now)

                self._worker = OutboxWorker(engine=self.engine, indexer=self.indexer, tick=tick,
                                            after_batch=after_batch, on_change=self.refresh_knowledge)
            return self._worker

    def refresh_live_cards(self, *, session: Session, now=None) -> None:  # type: ignore[no-untyped-def]
        """Entries that just changed (published now, or a scheduled version coming into force): open
        conversations showing them get the new card pushed once the transaction commits."""
        entry_ids = self.watcher.due(session=session, now=now)
        updates = conversations.refresh_changed_entries(session=session, entry_ids=entry_ids,
                                                        notice_days=self.settings.notice_days)
        if updates:
            event.listen(session, "after_commit", lambda _s: [self.live.publish(u) for u in updates], once=True)

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
        profiles: dict[str, EntryProfile] = {}
        for entry_id, v in current.items():
            words.extend([*v.synonyms, *v.tags] + ([v.title] if v.category == "product" else []))
            links[entry_id] = Association(v.title, tuple(v.related), tuple(v.synonyms))
            profiles[entry_id] = EntryProfile(
                names=[v.title, *v.synonyms], keywords=[*v.tags, v.summary, *(v.facts or {})],
                text=" ".join([v.body, v.script_template, *(str(f.get("value", "")) for f in (v.facts or {}).values())]),
                is_product=v.category == "product")
        analyzer.add_words(words)
        self._profiles = profiles
        if self._searcher is not None:
            self._searcher.associations = Associations(links)
        if self._tracker is not None:
            self._tracker.set_knowledge(profiles)

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
        if self._names is not None:
            self._names.close()
        if self._index is not None:
            self._index.close()
        self.engine.dispose()
