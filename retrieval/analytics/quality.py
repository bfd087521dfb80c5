"""Retrieval quality over time: scored evaluation runs kept with their dataset, and the golden
question set experts maintain per category (run through the live search path)."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from importlib import metadata
from typing import Any, Protocol

from pydantic import ValidationError
from sqlmodel import Session, col, select

from kb.errors import NotFound, PermissionDenied, ValidationFailed
from kb.models import Actor, Category, Entry, Role
from kb.timeutil import utcnow
from retrieval.analytics import messages
from retrieval.analytics.models import (
    EvalRun,
    EvalRunPublic,
    GoldenQuestion,
    GoldenQuestionIn,
    GoldenQuestionPublic,
    GoldenQuestionsPublic,
)
from retrieval.evaluate import QueryResult, score
from retrieval.search import SearchResponse

GOLDEN = "golden"


class _Searcher(Protocol):
    def search(self, query: str, *, top_k: int = 5, related: int = 3) -> SearchResponse: ...


def app_version() -> str:
    """The installed Zhiku version (and the build id a release pipeline may set in ZHIKU_BUILD)."""
    import os

    try:
        version = metadata.version("zhiku")
    except metadata.PackageNotFoundError:
        version = "dev"
    build = os.environ.get("ZHIKU_BUILD", "").strip()
    return f"{version}+{build}"[:100] if build else version


# ---------------------------------------------------------------- evaluation runs


def record_eval_run(*, session: Session, dataset: str, report: Mapping[str, Any], kind: str = "retrieval",
                    corpus: str | None = None, queries: str | None = None, model: str = "", actor: str = "",
                    ts: datetime | None = None) -> EvalRun:
    """Keep one scored run (its metrics without per-query rows) so quality can be charted across releases."""
    metrics = {k: v for k, v in report.items() if k not in ("results", "corpus", "queries")}
    run = EvalRun(ts=ts or utcnow(), dataset=dataset[:200], kind=kind, corpus=(corpus or None) and corpus[:500],
                  queries=(queries or None) and queries[:500], n=int(report.get("n", 0) or 0), metrics=metrics,
                  app_version=app_version(), model=model[:200], actor=actor[:100])
    session.add(run)
    session.flush()
    return run


def list_eval_runs(*, session: Session, dataset: str | None = None, kind: str | None = None,
                   limit: int = 200) -> list[EvalRunPublic]:
    """Stored runs, oldest first (ready to chart), optionally of one dataset or kind."""
    query = select(EvalRun)
    if dataset:
        query = query.where(EvalRun.dataset == dataset)
    if kind:
        query = query.where(EvalRun.kind == kind)
    rows = session.exec(query.order_by(col(EvalRun.ts).desc(), col(EvalRun.id).desc()).limit(limit)).all()
    return [EvalRunPublic.model_validate(r, from_attributes=True) for r in reversed(rows)]


# ---------------------------------------------------------------- golden questions


def _parse(data: GoldenQuestionIn | Mapping[str, Any]) -> GoldenQuestionIn:
    if isinstance(data, GoldenQuestionIn):
        parsed = data
    else:
        try:
            parsed = GoldenQuestionIn.model_validate(dict(data))
        except ValidationError as exc:
            errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"].removeprefix("Value error, ")}
                      for e in exc.errors()]
            raise ValidationFailed("黄金问题无效 invalid golden question: " + ", ".join(e["field"] for e in errors),
                                   errors=errors) from None
    try:
        parsed.category = Category.parse(parsed.category).value
    except ValueError as exc:
        raise ValidationFailed(str(exc), errors=[{"field": "category", "message": str(exc)}]) from None
    return parsed


def _check_entries(session: Session, ids: list[str]) -> None:
    known = set(session.exec(select(Entry.id).where(col(Entry.id).in_(ids))).all())
    missing = [i for i in ids if i not in known]
    if missing:
        raise ValidationFailed(messages.GOLDEN_UNKNOWN_ENTRIES.format(ids="、".join(missing)),
                               errors=[{"field": "expected_ids", "message": f"unknown: {', '.join(missing)}"}])


def _require_author(actor: Actor) -> None:
    if not actor.has(Role.EXPERT, Role.ADMIN):
        raise PermissionDenied(f"无权限：维护黄金问题需要专家或管理员 — {actor.username} is {actor.role}",
                               details={"action": "golden questions", "role": actor.role})


def _public(row: GoldenQuestion) -> GoldenQuestionPublic:
    return GoldenQuestionPublic.model_validate(row, from_attributes=True)


def get_golden(*, session: Session, question_id: int) -> GoldenQuestion:
    row = session.get(GoldenQuestion, question_id)
    if row is None:
        raise NotFound(messages.GOLDEN_NOT_FOUND.format(question_id=question_id), details={"question_id": question_id})
    return row


def list_golden(*, session: Session, category: str | None = None, active: bool | None = True) -> GoldenQuestionsPublic:
    """The golden questions (active ones by default), by category then id."""
    query = select(GoldenQuestion)
    if category:
        query = query.where(GoldenQuestion.category == _category(category))
    if active is not None:
        query = query.where(GoldenQuestion.active == active)
    rows = session.exec(query.order_by(col(GoldenQuestion.category), col(GoldenQuestion.id))).all()
    return GoldenQuestionsPublic(data=[_public(r) for r in rows], count=len(rows))


def _category(value: str) -> str:
    try:
        return Category.parse(value).value
    except ValueError as exc:
        raise ValidationFailed(str(exc), errors=[{"field": "category", "message": str(exc)}]) from None


def create_golden(*, session: Session, data: GoldenQuestionIn | Mapping[str, Any], actor: Actor) -> GoldenQuestionPublic:
    """Add a golden question; every expected entry must exist."""
    _require_author(actor)
    parsed = _parse(data)
    _check_entries(session, parsed.expected_ids)
    now = utcnow()
    row = GoldenQuestion(question=parsed.question, expected_ids=parsed.expected_ids, category=parsed.category,
                         author=actor.username, created_at=now, updated_at=now, active=parsed.active)
    session.add(row)
    session.flush()
    return _public(row)


def update_golden(*, session: Session, question_id: int, data: GoldenQuestionIn | Mapping[str, Any],
                  actor: Actor) -> GoldenQuestionPublic:
    """Replace a golden question's text, expected entries, category and active flag."""
    _require_author(actor)
    row = get_golden(session=session, question_id=question_id)
    parsed = _parse(data)
    _check_entries(session, parsed.expected_ids)
    row.question, row.expected_ids, row.category, row.active = parsed.question, parsed.expected_ids, parsed.category, parsed.active
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return _public(row)


def delete_golden(*, session: Session, question_id: int, actor: Actor) -> GoldenQuestionPublic:
    """Retire a golden question (kept, inactive: past runs still name it)."""
    _require_author(actor)
    row = get_golden(session=session, question_id=question_id)
    row.active, row.updated_at = False, utcnow()
    session.add(row)
    session.flush()
    return _public(row)


def run_golden(*, session: Session, searcher: _Searcher, actor: str = "", category: str | None = None,
               top_k: int = 10, model: str = "", record: bool = True) -> EvalRunPublic:
    """Ask every active golden question through the live search path; score overall and per category,
    list the misses, and store the run as dataset `golden`."""
    questions = list_golden(session=session, category=category).data
    results: list[QueryResult] = []
    by_category: dict[str, list[QueryResult]] = {}
    for q in questions:
        response = searcher.search(q.question, top_k=top_k, related=0)
        result = QueryResult(id=str(q.id), query=q.question, relevant=q.expected_ids,
                             ranked=[h.entry_id for h in response.hits], ms=response.took_ms)
        results.append(result)
        by_category.setdefault(q.category, []).append(result)
    report: dict[str, Any] = score(results)
    report["categories"] = {c: score(rs) for c, rs in sorted(by_category.items())}
    report["misses"] = [{"id": int(r.id), "question": r.query, "expected": r.relevant, "got": r.ranked[:3]}
                        for r in results if (r.rank() or 99) > 3][:100]
    dataset = GOLDEN if not category else f"{GOLDEN}:{_category(category)}"
    run = EvalRun(ts=utcnow(), dataset=dataset, kind=GOLDEN, n=len(results), metrics=report, app_version=app_version(),
                  model=model[:200], actor=actor[:100])
    if record:
        session.add(run)
        session.flush()
    else:
        run.id = 0
    return EvalRunPublic.model_validate(run, from_attributes=True)
