"""Knowledge analytics for experts and admins: gaps (and a gap → draft pack), frequent questions,
👎 ranking, unused entries, freshness, evaluation runs and the golden question set."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Authors, Editors, RowId, RuntimeDep, SessionDep
from retrieval import analytics
from retrieval.analytics.models import (
    EvalRunPublic,
    FeedbackStat,
    FreshnessReport,
    GapDraftIn,
    GapsPublic,
    GoldenQuestionIn,
    GoldenQuestionPublic,
    GoldenQuestionsPublic,
    UnusedEntry,
    WeekTopQuestions,
)
from review_workflow import service as workflow
from review_workflow.models import PackPublic

router = APIRouter(prefix="/analytics", tags=["analytics"])
Days = Annotated[float, Query(gt=0, le=366, description="统计窗口天数 window in days")]


@router.get("/gaps", response_model=GapsPublic)
def gaps(caller: Authors, runtime: RuntimeDep, session: SessionDep, days: Days = 28, until: datetime | None = None,
         threshold: Annotated[float | None, Query(gt=0, lt=1)] = None, min_count: Annotated[int, Query(ge=1)] = 2,
         limit: Annotated[int, Query(ge=1, le=500)] = 50) -> GapsPublic:
    """Knowledge gaps: zero-result, low-confidence and 👎 questions grouped by meaning, with counts, examples and weekly trend."""
    return analytics.find_gaps(session=session, embedder=runtime.embedder, days=days, until=until, threshold=threshold,
                               min_count=min_count, limit=limit)


@router.post("/gaps/{gap_id}/draft", response_model=PackPublic, status_code=201)
def gap_draft(gap_id: str, caller: Authors, runtime: RuntimeDep, session: SessionDep,
              body: GapDraftIn | None = None) -> PackPublic:
    """Turn a gap into a draft update pack (one 常见问题 item prefilled from the customers' questions) for the caller."""
    window = body or GapDraftIn()
    pack = analytics.draft_from_gap(session=session, embedder=runtime.embedder, gap_id=gap_id, actor=caller.actor,
                                    days=window.days, until=window.until, threshold=window.threshold)
    return workflow.to_public(session=session, pack=pack)


@router.get("/top-questions", response_model=list[WeekTopQuestions])
def top_questions(caller: Authors, runtime: RuntimeDep, session: SessionDep, days: Days = 28, until: datetime | None = None,
                  per_week: Annotated[int, Query(ge=1, le=100)] = 10) -> list[WeekTopQuestions]:
    """The most frequent questions of each ISO week (newest first), grouped by meaning."""
    return analytics.top_questions(session=session, embedder=runtime.embedder, days=days, until=until, per_week=per_week)


@router.get("/usage")
def usage(caller: Authors, session: SessionDep, days: Days = 56, until: datetime | None = None) -> list[dict[str, object]]:
    """Per ISO week: searches, low-confidence share, cards shown, 👍 and 👎."""
    return analytics.weekly_usage(session=session, days=days, until=until)


@router.get("/feedback", response_model=list[FeedbackStat])
def feedback(caller: Authors, session: SessionDep, days: Days = 28, until: datetime | None = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[FeedbackStat]:
    """Entries with the most 👎, with their 👍 count and the latest comments."""
    return analytics.feedback_ranking(session=session, days=days, until=until, limit=limit)


@router.get("/unused-entries", response_model=list[UnusedEntry])
def unused_entries(caller: Authors, session: SessionDep, days: Days = 90, until: datetime | None = None,
                   include_new: bool = False) -> list[UnusedEntry]:
    """Entries in force that no search, retrieve or card showed in the window (default 90 days)."""
    return analytics.unused_entries(session=session, days=days, until=until, include_new=include_new)


@router.get("/freshness", response_model=FreshnessReport)
def freshness(caller: Editors, runtime: RuntimeDep, session: SessionDep, days: Days = 56,
              until: datetime | None = None) -> FreshnessReport:
    """Per ISO week submit→live and approve→searchable p50/p95 against the SLA, overdue packs, stale entries, lint coverage."""
    return analytics.freshness_report(session=session, days=days, until=until, target_hours=runtime.settings.sla_hours)


@router.get("/eval-runs", response_model=list[EvalRunPublic])
def eval_runs(caller: Editors, session: SessionDep, dataset: str | None = None, kind: str | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[EvalRunPublic]:
    """Stored evaluation runs (`zhiku eval retrieval`, golden set), oldest first, for the quality chart."""
    return analytics.list_eval_runs(session=session, dataset=dataset, kind=kind, limit=limit)


@router.get("/golden", response_model=GoldenQuestionsPublic)
def golden_list(caller: Authors, session: SessionDep, category: str | None = None,
                active: bool | None = True) -> GoldenQuestionsPublic:
    """The golden question set (active questions by default), by category."""
    return analytics.list_golden(session=session, category=category, active=active)


@router.post("/golden", response_model=GoldenQuestionPublic, status_code=201)
def golden_create(body: GoldenQuestionIn, caller: Authors, session: SessionDep) -> GoldenQuestionPublic:
    """Add a golden question with the entries that should answer it."""
    return analytics.create_golden(session=session, data=body, actor=caller.actor)


@router.put("/golden/{question_id}", response_model=GoldenQuestionPublic)
def golden_update(question_id: RowId, body: GoldenQuestionIn, caller: Authors, session: SessionDep) -> GoldenQuestionPublic:
    """Change a golden question, its expected entries, category or active flag."""
    return analytics.update_golden(session=session, question_id=question_id, data=body, actor=caller.actor)


@router.delete("/golden/{question_id}", response_model=GoldenQuestionPublic)
def golden_delete(question_id: RowId, caller: Authors, session: SessionDep) -> GoldenQuestionPublic:
    """Retire a golden question (kept inactive; past runs still refer to it)."""
    return analytics.delete_golden(session=session, question_id=question_id, actor=caller.actor)


@router.post("/golden/run", response_model=EvalRunPublic, status_code=201)
def golden_run(caller: Authors, runtime: RuntimeDep, session: SessionDep, category: str | None = None) -> EvalRunPublic:
    """Ask the golden questions through the live search path; store and return the scored run (dataset `golden`)."""
    return analytics.run_golden(session=session, searcher=runtime.searcher, actor=caller.actor.username,
                                category=category, model=runtime.embedder.name)
