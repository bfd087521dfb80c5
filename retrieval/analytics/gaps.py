"""Knowledge gaps: zero-result, low-confidence and 👎 questions grouped by meaning, and a gap turned
into a draft update pack for an expert in one call."""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, or_, select

from kb.errors import Conflict, NotFound
from kb.models import Actor, Category, Feedback, SearchLog
from kb.timeutil import to_local, utcnow
from retrieval.analytics import messages
from retrieval.analytics.clustering import DEFAULT_THRESHOLD, group_questions, label_of, question_key
from retrieval.analytics.models import GapDraft, GapPublic, GapsPublic, WeekCount
from retrieval.analytics.period import iso_week, weeks_between, window
from retrieval.embedding import Embedder
from review_workflow.models import PackState, UpdatePack

# Below this confidence a search counts as a gap signal: the same line as the hand-off to a human.
LOW_CONFIDENCE = 0.5
EXAMPLES = 8


@dataclass
class _Signal:
    raw: str
    ts: datetime
    source: str  # zero_result | low_confidence | thumbs_down
    top_entry: str | None = None


@dataclass
class _Acc:
    count: int = 0
    keys: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    weeks: Counter[str] = field(default_factory=Counter)
    entries: Counter[str] = field(default_factory=Counter)
    first: datetime | None = None
    last: datetime | None = None


def gap_id(representative_key: str) -> str:
    """A stable id for a gap: derived from its representative question, so a refreshed list keeps it."""
    return hashlib.sha1(representative_key.encode("utf-8")).hexdigest()[:12]


def _signals(session: Session, since: datetime, until: datetime, low_confidence: float) -> list[_Signal]:
    rows = session.exec(select(SearchLog.query, SearchLog.ts, SearchLog.results, SearchLog.confidence).where(
        col(SearchLog.ts) >= since, col(SearchLog.ts) <= until,
        or_(col(SearchLog.confidence) < low_confidence, col(SearchLog.confidence).is_(None)))).all()
    signals = []
    for query, ts, results, confidence in rows:
        if not results:
            signals.append(_Signal(query, ts, "zero_result"))
        elif confidence is not None:
            signals.append(_Signal(query, ts, "low_confidence", str(results[0].get("entry_id") or "") or None))
    disliked = session.exec(select(Feedback.query, Feedback.ts, Feedback.entry_id).where(
        col(Feedback.ts) >= since, col(Feedback.ts) <= until, col(Feedback.useful).is_(False),
        col(Feedback.query).is_not(None))).all()
    signals.extend(_Signal(q or "", ts, "thumbs_down", entry_id) for q, ts, entry_id in disliked)
    return [s for s in signals if question_key(s.raw)]


def find_gaps(*, session: Session, embedder: Embedder | None, days: float = 28, until: datetime | None = None,
              threshold: float | None = None, low_confidence: float = LOW_CONFIDENCE, min_count: int = 2,
              limit: int = 50) -> GapsPublic:
    """Gaps in the last `days` days: questions answered badly, grouped by meaning, most frequent first.

    A gap needs `min_count` signals (one-off noise is left out); `threshold` is the cosine distance
    under which two questions are the same (default tuned on multilingual-e5-small)."""
    since, end = window(days=days, until=until)
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    signals = _signals(session, since, end, low_confidence)
    counts = Counter(question_key(s.raw) for s in signals)
    groups = group_questions(counts, embedder=embedder, threshold=threshold)
    label = label_of(groups)
    raw_forms: dict[str, Counter[str]] = defaultdict(Counter)
    accs = [_Acc() for _ in groups]
    for s in signals:
        key = question_key(s.raw)
        raw_forms[key][s.raw.strip()] += 1
        acc = accs[label[key]]
        acc.count += 1
        acc.keys[key] += 1
        acc.sources[s.source] += 1
        acc.weeks[iso_week(s.ts)] += 1
        if s.top_entry:
            acc.entries[s.top_entry] += 1
        acc.first = s.ts if acc.first is None or s.ts < acc.first else acc.first
        acc.last = s.ts if acc.last is None or s.ts > acc.last else acc.last
    drafted = _drafted(session)
    weeks = weeks_between(since, end)
    gaps = []
    for group, acc in zip(groups, accs, strict=True):
        if acc.count < min_count or acc.first is None or acc.last is None:
            continue
        shown = [raw_forms[k].most_common(1)[0][0] for k, _ in acc.keys.most_common()]
        gid = gap_id(group.representative)
        gaps.append(GapPublic(
            id=gid, representative=shown[0], count=acc.count, distinct=len(acc.keys), examples=shown[:EXAMPLES],
            sources=dict(acc.sources), first_seen=acc.first, last_seen=acc.last,
            trend=[WeekCount(week=w, count=acc.weeks.get(w, 0)) for w in weeks],
            nearest_entries=[e for e, _ in acc.entries.most_common(3)], draft_pack_id=drafted.get(gid),
        ))
    gaps.sort(key=lambda g: (-g.count, -g.last_seen.timestamp(), g.id))
    return GapsPublic(data=gaps[:limit], count=len(gaps), since=since, until=end, signals=len(signals), threshold=threshold)


def _drafted(session: Session) -> dict[str, str]:
    """gap id → the pack drafted for it, while that pack is still being worked on."""
    open_states = (PackState.DRAFT, PackState.SUBMITTED, PackState.REJECTED)
    rows = session.exec(select(GapDraft.gap_id, GapDraft.pack_id).join(UpdatePack, col(UpdatePack.id) == col(GapDraft.pack_id))
                        .where(col(UpdatePack.state).in_([s.value for s in open_states]))
                        .order_by(col(GapDraft.id))).all()
    return {gid: pid for gid, pid in rows}


def draft_from_gap(*, session: Session, embedder: Embedder | None, gap_id: str, actor: Actor, days: float = 28,
                   until: datetime | None = None, threshold: float | None = None, now: datetime | None = None) -> UpdatePack:
    """Turn a gap into a draft pack owned by `actor`: one `create` item in 常见问题, titled with the
    representative question, its body a placeholder listing the customers' questions for the expert to answer."""
    from review_workflow import service as workflow

    gaps = find_gaps(session=session, embedder=embedder, days=days, until=until, threshold=threshold, limit=10_000)
    gap = next((g for g in gaps.data if g.id == gap_id), None)
    if gap is None:
        raise NotFound(messages.GAP_NOT_FOUND.format(gap_id=gap_id), details={"gap_id": gap_id})
    if gap.draft_pack_id:
        raise Conflict(messages.GAP_ALREADY_DRAFTED.format(pack_id=gap.draft_pack_id),
                       details={"gap_id": gap_id, "pack_id": gap.draft_pack_id})
    first, last = to_local(gap.first_seen), to_local(gap.last_seen)
    body = messages.GAP_BODY.format(count=gap.count, distinct=gap.distinct, first=f"{first:%Y-%m-%d}", last=f"{last:%Y-%m-%d}",
                                    examples="\n".join(f"- {q}" for q in gap.examples))
    if gap.nearest_entries:
        body += messages.GAP_BODY_NEAREST.format(entries="、".join(gap.nearest_entries))
    title = gap.representative[:200]
    pack = workflow.create_pack(session=session, actor=actor, now=now, source=f"gap:{gap_id}", data={
        "title": messages.GAP_PACK_TITLE.format(question=title)[:200],
        "items": [{"op": "create", "title": title, "category": Category.FAQ.value, "body": body, "tags": ["知识缺口"]}],
    })
    session.add(GapDraft(gap_id=gap_id, pack_id=pack.id, representative=gap.representative, count=gap.count,
                         actor=actor.username, created_at=now or utcnow()))
    session.flush()
    return pack
