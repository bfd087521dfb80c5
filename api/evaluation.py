"""`zhiku eval retrieval` and `zhiku eval conversations`: a throwaway store (SQLite + embedded index
under a temp dir) loaded with a corpus as published entries, then every question through the searcher
agents use, or every dialogue through the topic tracker of the live sidebar."""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from api.runtime import Runtime
from kb import service
from kb.db import make_engine, session_scope, upgrade
from kb.settings import Settings
from retrieval.embedding import Embedder
from retrieval.dialogs import DialogResult, parse_dialog, play_dialog, score_dialogs
from retrieval.evaluate import CorpusMap, QueryResult, corpus_entries, read_jsonl, run_queries, safe_entry_id, score

EVAL_ACTOR = "zhiku-eval"


def load_corpus(runtime: Runtime, rows: list[dict[str, Any]]) -> CorpusMap:
    """Store each corpus line as a published entry (a `supersedes` line as a newer version)."""
    mapping = CorpusMap()
    with session_scope(runtime.engine) as session:
        for number, (cid, sup, data) in enumerate(corpus_entries(rows)):
            if sup:
                entry_id = mapping.entry_of[sup]
                latest = service.get_entry(session=session, entry_id=entry_id).latest_version
                version = service.add_version(session=session, entry_id=entry_id, base_version=latest,
                                              data=data, actor=EVAL_ACTOR)
            else:
                entry_id = safe_entry_id(cid, number)
                version = service.create_entry(session=session, data={**data, "id": entry_id}, actor=EVAL_ACTOR)
            mapping.entry_of[cid] = entry_id
            mapping.line_of[(entry_id, version.number)] = cid
    return mapping


@contextmanager
def eval_store(*, rows: list[dict[str, Any]], settings: Settings, embedder: Embedder | None = None,
               progress: Callable[[str, int, int], None] | None = None) -> Iterator[tuple[Runtime, CorpusMap]]:
    """A throwaway store (SQLite + embedded index in a temp dir) holding `rows` as published, indexed entries."""
    with tempfile.TemporaryDirectory(prefix="zhiku-eval-") as tmp:
        store = Settings(data_dir=Path(tmp), embed_model=str(settings.model_path), max_cards=settings.max_cards,
                         _env_file=None)  # type: ignore[call-arg]
        engine = make_engine(store.resolved_database_url)
        upgrade(engine)
        engine.dispose()
        runtime = Runtime.open(store, embedder=embedder)
        try:
            mapping = load_corpus(runtime, rows)
            runtime.sync_index(progress=_stepper(progress, "index", len(mapping.line_of)))
            runtime.index.optimize()
            runtime.names.optimize()
            runtime.searcher.search("预热 warm-up", top_k=1)  # load the model before timing
            yield runtime, mapping
        finally:
            runtime.close()


def evaluate_retrieval(
    *, corpus: Path, queries: Path, settings: Settings, top_k: int = 10,
    progress: Callable[[str, int, int], None] | None = None, embedder: Embedder | None = None,
) -> tuple[dict[str, Any], list[QueryResult]]:
    """Score the search path on a labelled question set; returns (report, per-query results)."""
    rows, questions = read_jsonl(corpus), read_jsonl(queries)
    with eval_store(rows=rows, settings=settings, embedder=embedder, progress=progress) as (runtime, mapping):
        searcher = runtime.searcher
        depth = max(top_k, 100 if any(q.get("known_negative_ids") for q in questions) else top_k)

        def ranker(query: str) -> tuple[list[str], float]:
            response = searcher.search(query, top_k=depth, related=0)
            return [mapping.name(h.entry_id, h.version) for h in response.hits], response.took_ms

        results = run_queries(questions, ranker, progress=_stepper(progress, "query", len(questions)))
        encoder = runtime.embedder.name
    report = score(results)
    report["embedder"] = encoder  # which encoder's vectors the numbers come from (ZHIKU_ENCODER)
    report["corpus"] = str(corpus)
    report["queries"] = str(queries)
    return report, results


def evaluate_conversations(
    *, corpus: Path, dialogs: Path, settings: Settings,
    progress: Callable[[str, int, int], None] | None = None, embedder: Embedder | None = None,
) -> tuple[dict[str, Any], list[DialogResult]]:
    """Play each dialogue through the topic tracker agents' sidebars use; score cards at the checkpoints."""
    rows, lines = read_jsonl(corpus), read_jsonl(dialogs)
    parsed = [parse_dialog(line, number) for number, line in enumerate(lines, start=1)]
    with eval_store(rows=rows, settings=settings, embedder=embedder, progress=progress) as (runtime, mapping):
        tracker = runtime.topic_tracker
        corpus_id = {entry: cid for cid, entry in mapping.entry_of.items()}  # successors come last
        step = _stepper(progress, "dialog", len(parsed))
        results = []
        for dialog in parsed:
            results.append(play_dialog(dialog, tracker, name=lambda e: corpus_id.get(e, e)))
            if step:
                step(1)
        encoder = runtime.embedder.name
    report = score_dialogs(results, max_cards=tracker.config.max_cards)
    report["embedder"] = encoder
    report["corpus"] = str(corpus)
    report["dialogs"] = str(dialogs)
    return report, results


def _stepper(progress, phase: str, total: int):  # type: ignore[no-untyped-def]
    if progress is None:
        return None
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        progress(phase, done, total)

    return step
