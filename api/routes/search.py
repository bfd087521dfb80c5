"""Search for agents, retrieval for the chatbot, and compliance lint on any text."""
from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from fastapi import APIRouter

from api.deps import Editors, Retrievers, RuntimeDep, Searchers, SessionDep
from api.schemas import LintIn, LintOut, PassageOut, RetrieveIn, RetrieveOut, SearchIn, SearchOut, SearchResultOut
from kb import service
from kb.models import Category
from kb.timeutil import utcnow
from retrieval.cards import Citation
from retrieval.logs import log_search
from retrieval.search import Filters
from review_workflow import lint

router = APIRouter(tags=["search"])


def _listed(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


@router.post("/search", response_model=SearchOut)
def search(body: SearchIn, caller: Searchers, runtime: RuntimeDep, session: SessionDep) -> SearchOut:
    """Keywords or a plain question → entries in force (or as of a time), with related entries."""
    flt = body.filters
    filters = Filters(categories=tuple(Category.parse(c).value for c in _listed(flt.category)) if flt else (),
                      product_types=_listed(flt.product_type) if flt else (), tags=tuple(flt.tags or ()) if flt else ())
    response = runtime.searcher.search(body.query, top_k=body.top_k, filters=filters, as_of=body.as_of)
    log_search(session=session, actor=caller.actor.username, role=caller.actor.role, kind="search", response=response)
    since = (body.as_of or utcnow()) - timedelta(days=runtime.settings.notice_days)
    changed = {n.entry_id for n in service.notices_since(session=session, since=since, until=body.as_of,
                                                         entry_ids=[h.entry_id for h in response.hits])}
    return SearchOut(
        results=[SearchResultOut(entry_id=h.entry_id, version=h.version, title=h.title, snippet=h.snippet,
                                 score=round(h.score, 6), category=h.category, valid_from=h.valid_from,
                                 changed_recently=h.entry_id in changed, related=[asdict(r) for r in h.related])
                 for h in response.hits],
        took_ms=response.took_ms, confidence=response.confidence, handoff=response.handoff,
    )


@router.post("/retrieve", response_model=RetrieveOut)
def retrieve(body: RetrieveIn, caller: Retrievers, runtime: RuntimeDep, session: SessionDep) -> RetrieveOut:
    """For the chatbot: passages with citations, a calibrated confidence, and whether to hand over to a human."""
    response = runtime.searcher.search(body.query, top_k=body.top_k, related=0)
    log_search(session=session, actor=caller.actor.username, role=caller.actor.role, kind="retrieve",
               response=response, conversation_id=body.conversation_id)
    return RetrieveOut(
        passages=[PassageOut(entry_id=h.entry_id, version=h.version, title=h.title, text=h.text, score=round(h.score, 6),
                             citation=Citation(h.entry_id, h.version, h.valid_from).text) for h in response.hits],
        confidence=response.confidence, handoff=response.handoff,
    )


@router.post("/lint", response_model=LintOut)
def lint_text(body: LintIn, caller: Editors) -> LintOut:
    """Run the compliance rules on any text (the same rules as pack review)."""
    findings = lint.lint_text(body.text, category=body.category, product_type=body.product_type, risk_level=body.risk_level)
    return LintOut(findings=[asdict(f) for f in findings], rules_version=lint.rules_version())
