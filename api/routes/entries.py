"""Knowledge entries: list, one entry (now or as of a time), versions, diff, rollback."""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Admins, SessionDep, Staff
from api.schemas import DiffOut, RollbackIn
from kb import attachments, service
from kb.errors import NotFound
from kb.models import AttachmentPublic, EntriesPublic, EntryPublic, EntryVersionPublic
from review_workflow import service as workflow

router = APIRouter(tags=["entries"])
MAX_PAGE_SIZE = 100


@router.get("/entries", response_model=EntriesPublic)
def list_entries(
    caller: Staff, session: SessionDep,
    category: str | None = None, product_type: str | None = None, q: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=1)] = 1, page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    as_of: datetime | None = None,
) -> EntriesPublic:
    """Entries in force (now or `as_of`), filtered by category (代码或中文名), product type or text."""
    rows, count = service.list_entries(session=session, category=category, product_type=product_type, q=q, at=as_of,
                                       offset=(page - 1) * page_size, limit=page_size)
    return EntriesPublic(data=rows, count=count)


@router.get("/entries/{entry_id}", response_model=EntryPublic)
def get_entry(entry_id: str, caller: Staff, session: SessionDep, as_of: datetime | None = None) -> EntryPublic:
    """One entry with the version in force now, or at `as_of` (ISO 8601)."""
    entry = service.get_entry(session=session, entry_id=entry_id)
    version = service.entry_as_of(session=session, entry_id=entry_id, at=as_of)
    if version is None and as_of is not None:
        raise NotFound(f"该时间点条目未生效 entry {entry_id!r} was not in force at {as_of.isoformat()}")
    return service.to_public(entry, version)


@router.get("/entries/{entry_id}/attachments", response_model=list[AttachmentPublic])
def entry_attachments(entry_id: str, caller: Staff, session: SessionDep,
                      as_of: datetime | None = None) -> list[AttachmentPublic]:
    """Attachments of the version in force now (or at `as_of`): originals, images, training videos, links."""
    return attachments.for_entry(session=session, entry_id=entry_id, at=as_of)


@router.get("/entries/{entry_id}/versions", response_model=list[EntryVersionPublic])
def versions(entry_id: str, caller: Staff, session: SessionDep) -> list[EntryVersionPublic]:
    """Every version, oldest first."""
    return [EntryVersionPublic.model_validate(v, from_attributes=True) for v in service.history(session=session, entry_id=entry_id)]


@router.get("/entries/{entry_id}/versions/{number}", response_model=EntryVersionPublic)
def version(entry_id: str, number: int, caller: Staff, session: SessionDep) -> EntryVersionPublic:
    """One version by number."""
    return EntryVersionPublic.model_validate(service.get_version(session=session, entry_id=entry_id, number=number),
                                             from_attributes=True)


@router.get("/entries/{entry_id}/diff", response_model=DiffOut)
def diff(entry_id: str, caller: Staff, session: SessionDep,
         from_: Annotated[int, Query(alias="from", ge=1)], to: Annotated[int, Query(ge=1)]) -> DiffOut:
    """Field-level diff of facts and fields, line diff of the body, between two versions."""
    result = service.diff_versions(session=session, entry_id=entry_id, from_version=from_, to_version=to)
    return DiffOut(entry_id=entry_id, from_version=from_, to_version=to, fields=[asdict(f) for f in result.fields],
                   facts=[asdict(f) for f in result.facts], body=result.body)


@router.post("/entries/{entry_id}/rollback", response_model=EntryVersionPublic, status_code=201)
def rollback(entry_id: str, body: RollbackIn, caller: Admins, session: SessionDep) -> EntryVersionPublic:
    """Admin: publish an earlier version's content as a new version (history is kept)."""
    created = workflow.rollback_entry(session=session, entry_id=entry_id, to_version=body.to_version,
                                      actor=caller.actor, reason=body.reason)
    return EntryVersionPublic.model_validate(created, from_attributes=True)
