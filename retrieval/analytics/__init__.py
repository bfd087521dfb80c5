"""Knowledge analytics (issue 9): gaps, usage, freshness and workflow health, retrieval quality, the
weekly report. Every function is keyword-only and returns Public models, for the API, the CLI and
the admin dashboard alike."""
from __future__ import annotations

from retrieval.analytics.gaps import draft_from_gap, find_gaps
from retrieval.analytics.quality import (
    create_golden,
    delete_golden,
    list_eval_runs,
    list_golden,
    record_eval_run,
    run_golden,
    update_golden,
)
from retrieval.analytics.usage import feedback_ranking, top_questions, unused_entries, weekly_usage
from retrieval.analytics.workflow_metrics import freshness_report, lint_coverage, overdue_packs, weekly_freshness

__all__ = [
    "create_golden", "delete_golden", "draft_from_gap", "feedback_ranking", "find_gaps", "freshness_report",
    "lint_coverage", "list_eval_runs", "list_golden", "overdue_packs", "record_eval_run", "run_golden",
    "top_questions", "unused_entries", "update_golden", "weekly_freshness", "weekly_usage",
]
