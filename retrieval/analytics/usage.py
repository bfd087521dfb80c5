"""How the knowledge base is used: the most frequent questions per week, the entries with most 👎,
and the entries nobody was shown (no search result, retrieve or card) for a long time."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime

from sqlmodel import Session, col, select

from kb import service as kb_service
from kb.models import Entry, Feedback, SearchLog
from retrieval.analytics.clustering import DEFAULT_THRESHOLD, group_questions, label_of, question_key
from retrieval.analytics.models import FeedbackStat, TopQuestion, UnusedEntry, WeekTopQuestions
from retrieval.analytics.period import iso_week, weeks_between, window
from retrieval.embedding import Embedder
from retrieval.models import CardImpression


def top_questions(*, session: Session, embedder: Embedder | None = None, days: float = 28, until: datetime | None = None,
                  per_week: int = 10, threshold: float | None = None) -> list[WeekTopQuestions]:
    """The most frequent questions of each ISO week, newest week first; normalised text, and grouped by
    meaning when an embedder is given (one clustering over the whole window, so weeks compare)."""
    since, end = window(days=days, until=until)
    rows = session.exec(select(SearchLog.query, SearchLog.ts).where(col(SearchLog.ts) >= since, col(SearchLog.ts) <= end)).all()
    keyed = [(question_key(q), q.strip(), ts) for q, ts in rows]
    keyed = [k for k in keyed if k[0]]
    counts = Counter(key for key, _, _ in keyed)
    groups = group_questions(counts, embedder=embedder, threshold=DEFAULT_THRESHOLD if threshold is None else threshold)
    label = label_of(groups)
    per: dict[str, Counter[int]] = defaultdict(Counter)
    variants: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    for key, raw, ts in keyed:
        week = iso_week(ts)
        per[week][label[key]] += 1
        variants[(week, label[key])][raw] += 1
    result = []
    for week in reversed(weeks_between(since, end)):
        counter = per.get(week, Counter())
        result.append(WeekTopQuestions(week=week, total=sum(counter.values()), questions=[
            TopQuestion(question=variants[(week, g)].most_common(1)[0][0], count=n,
                        variants=[v for v, _ in variants[(week, g)].most_common(5)])
            for g, n in sorted(counter.items(), key=lambda kv: (-kv[1], groups[kv[0]].representative))[:per_week]]))
    return result


def weekly_usage(*, session: Session, days: float = 56, until: datetime | None = None,
                 low_confidence: float = 0.5) -> list[dict[str, object]]:
    """Per ISO week: searches, low-confidence share, card impressions, 👍 and 👎 (oldest week first)."""
    since, end = window(days=days, until=until)
    searches: Counter[str] = Counter()
    low: Counter[str] = Counter()
    for ts, confidence, results in session.exec(select(SearchLog.ts, SearchLog.confidence, SearchLog.results).where(
            col(SearchLog.ts) >= since, col(SearchLog.ts) <= end)).all():
        week = iso_week(ts)
        searches[week] += 1
        if not results or (confidence is not None and confidence < low_confidence):
            low[week] += 1
    cards = Counter(iso_week(ts) for ts in session.exec(select(CardImpression.ts).where(
        col(CardImpression.ts) >= since, col(CardImpression.ts) <= end)).all())
    up: Counter[str] = Counter()
    down: Counter[str] = Counter()
    for ts, useful in session.exec(select(Feedback.ts, Feedback.useful).where(col(Feedback.ts) >= since, col(Feedback.ts) <= end)).all():
        (up if useful else down)[iso_week(ts)] += 1
    return [{"week": w, "searches": searches[w], "low_confidence": low[w],
             "low_share": round(low[w] / searches[w], 4) if searches[w] else None,
             "cards": cards[w], "up": up[w], "down": down[w]} for w in weeks_between(since, end)]


def feedback_ranking(*, session: Session, days: float = 28, until: datetime | None = None, limit: int = 20) -> list[FeedbackStat]:
    """Entries with the most 👎 in the window (ties: higher 👎 share first), with the latest comments."""
    since, end = window(days=days, until=until)
    rows = session.exec(select(Feedback).where(col(Feedback.ts) >= since, col(Feedback.ts) <= end)
                        .order_by(col(Feedback.ts).desc())).all()
    up: Counter[str] = Counter()
    down: Counter[str] = Counter()
    comments: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        (up if row.useful else down)[row.entry_id] += 1
        if not row.useful and row.comment and len(comments[row.entry_id]) < 5:
            comments[row.entry_id].append(row.comment)
    titles = _titles(session, list(down))
    stats = [FeedbackStat(entry_id=e, title=titles.get(e, ""), down=n, up=up[e], down_share=round(n / (n + up[e]), 4),
                          comments=comments[e]) for e, n in down.items()]
    stats.sort(key=lambda s: (-s.down, -s.down_share, s.entry_id))
    return stats[:limit]


def _titles(session: Session, entry_ids: list[str]) -> dict[str, str]:
    current = kb_service.current_versions(session=session)
    return {e: current[e].title for e in entry_ids if e in current}


def shown_entries(*, session: Session, since: datetime, until: datetime) -> Counter[str]:
    """entry id → times it was shown (search or retrieve result, or a card) in [since, until]."""
    shown: Counter[str] = Counter()
    logs = session.exec(select(SearchLog.results).where(col(SearchLog.ts) >= since, col(SearchLog.ts) <= until)
                        .execution_options(yield_per=2000))
    for results in logs:
        for hit in results or ():
            if hit.get("entry_id"):
                shown[str(hit["entry_id"])] += 1
    for (entry_id,) in session.execute(select(CardImpression.entry_id).where(
            col(CardImpression.ts) >= since, col(CardImpression.ts) <= until)).all():
        shown[entry_id] += 1
    return shown


def unused_entries(*, session: Session, days: float = 90, until: datetime | None = None,
                   include_new: bool = False) -> list[UnusedEntry]:
    """Entries in force that no search, retrieve or card showed in the last `days` days, oldest first.

    Entries created inside the window have not had the whole period; they are left out unless `include_new`."""
    since, end = window(days=days, until=until)
    shown = shown_entries(session=session, since=since, until=end)
    current = kb_service.current_versions(session=session, at=end)
    entries = {e.id: e for e in session.exec(select(Entry).where(col(Entry.id).in_(list(current)))).all()} if current else {}
    unused = []
    for entry_id, version in current.items():
        entry = entries.get(entry_id)
        if entry_id in shown or entry is None:
            continue
        if not include_new and entry.created_at > since:
            continue
        unused.append(UnusedEntry(entry_id=entry_id, title=version.title, category=version.category, version=version.number,
                                  valid_from=version.valid_from, owner_department=entry.owner_department))
    unused.sort(key=lambda u: (u.valid_from, u.entry_id))
    return unused


