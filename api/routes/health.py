"""Liveness and readiness for operators and load balancers."""
from __future__ import annotations

from fastapi import APIRouter
from sqlmodel import func, select

from api.deps import SessionDep
from kb import service
from kb.models import Entry

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(session: SessionDep) -> dict[str, object]:
    """Liveness plus what is loaded: entry count and entries in force now."""
    total = session.exec(select(func.count()).select_from(Entry)).one()
    return {"status": "ok", "entries": total, "entries_in_force": len(service.current_versions(session=session))}
