"""Update packs: create, edit, submit, approve, reject, withdraw, revise, publish now, list."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, UploadFile

from ingestion.parsers import Limits
from review_workflow.upload import pack_from_upload

from api.deps import Admins, Authors, Editors, Reviewers, RuntimeDep, SessionDep
from api.schemas import RejectIn
from review_workflow import service as workflow
from review_workflow.models import ApproveIn, PackIn, PackPublic, PackState

router = APIRouter(tags=["packs"])


@router.post("/packs", response_model=PackPublic, status_code=201)
def create(body: PackIn, caller: Authors, session: SessionDep) -> PackPublic:
    """Expert: create a draft pack; items are validated and linted now (findings in the response)."""
    pack = workflow.create_pack(session=session, data=body, actor=caller.actor)
    return workflow.to_public(session=session, pack=pack)


@router.post("/packs/upload", response_model=PackPublic, status_code=201)
async def upload(caller: Authors, runtime: RuntimeDep, session: SessionDep, file: UploadFile,
                 title: Annotated[str | None, Form()] = None) -> PackPublic:
    """Expert: upload a pack file (.md .xlsx .csv .docx .pdf .zip); any error → 422 naming file, sheet and row, nothing saved."""
    limits = Limits(max_upload_bytes=runtime.settings.upload_max_bytes)
    data = await file.read(limits.max_upload_bytes + 1)
    pack, _ = pack_from_upload(session=session, filename=file.filename or "upload", data=data, title=title,
                               actor=caller.actor, limits=limits)
    return workflow.to_public(session=session, pack=pack)


@router.put("/packs/{pack_id}", response_model=PackPublic)
def edit(pack_id: str, body: PackIn, caller: Authors, session: SessionDep) -> PackPublic:
    """Expert: replace the items of your draft or submitted pack (a new revision goes back to review)."""
    pack = workflow.edit_pack(session=session, pack_id=pack_id, data=body, actor=caller.actor)
    return workflow.to_public(session=session, pack=pack)


@router.post("/packs/{pack_id}/submit", response_model=PackPublic)
def submit(pack_id: str, caller: Authors, runtime: RuntimeDep, session: SessionDep) -> PackPublic:
    """Expert: send your draft to compliance review (starts the SLA clock, 24 h by default)."""
    pack = workflow.submit_pack(session=session, pack_id=pack_id, actor=caller.actor, sla_hours=runtime.settings.sla_hours)
    return workflow.to_public(session=session, pack=pack)


@router.post("/packs/{pack_id}/withdraw", response_model=PackPublic)
def withdraw(pack_id: str, caller: Authors, session: SessionDep) -> PackPublic:
    """Expert: withdraw your draft or submitted pack."""
    pack = workflow.withdraw_pack(session=session, pack_id=pack_id, actor=caller.actor)
    return workflow.to_public(session=session, pack=pack)


@router.post("/packs/{pack_id}/revise", response_model=PackPublic)
def revise(pack_id: str, caller: Authors, session: SessionDep) -> PackPublic:
    """Expert: take your rejected pack back to draft."""
    pack = workflow.revise_pack(session=session, pack_id=pack_id, actor=caller.actor)
    return workflow.to_public(session=session, pack=pack)


@router.post("/packs/{pack_id}/approve", response_model=PackPublic)
def approve(pack_id: str, body: ApproveIn, caller: Reviewers, session: SessionDep) -> PackPublic:
    """Reviewer: approve (never your own pack); publishes now or schedules for `effective_at`."""
    pack = workflow.approve_pack(session=session, pack_id=pack_id, data=body, actor=caller.actor)
    return workflow.to_public(session=session, pack=pack)


@router.post("/packs/{pack_id}/reject", response_model=PackPublic)
def reject(pack_id: str, body: RejectIn, caller: Reviewers, session: SessionDep) -> PackPublic:
    """Reviewer: reject with a comment for the expert."""
    pack = workflow.reject_pack(session=session, pack_id=pack_id, comment=body.comment, actor=caller.actor)
    return workflow.to_public(session=session, pack=pack)


@router.post("/packs/{pack_id}/publish", response_model=PackPublic)
def publish_now(pack_id: str, caller: Admins, session: SessionDep) -> PackPublic:
    """Admin: make a scheduled pack effective now."""
    pack = workflow.publish_now(session=session, pack_id=pack_id, actor=caller.actor)
    return workflow.to_public(session=session, pack=pack)


@router.get("/packs", response_model=list[PackPublic])
def list_packs(caller: Editors, session: SessionDep, state: PackState | None = None,
               mine: Annotated[bool, Query()] = False) -> list[PackPublic]:
    """Packs by state; `mine=true` for your own. The review queue is `state=submitted` (overdue first)."""
    if state == PackState.SUBMITTED and not mine:
        packs = workflow.review_queue(session=session)
    else:
        packs = workflow.list_packs(session=session, state=state.value if state else None,
                                    submitter=caller.actor.username if mine else None)
    return [workflow.to_public(session=session, pack=p) for p in packs]


@router.get("/packs/{pack_id}", response_model=PackPublic)
def get_pack(pack_id: str, caller: Editors, session: SessionDep) -> PackPublic:
    """One pack with its items, lint findings and reviews."""
    return workflow.to_public(session=session, pack=workflow.get_pack(session=session, pack_id=pack_id))
