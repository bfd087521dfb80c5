"""Update packs: create, edit, submit, approve, reject, withdraw, revise, publish now, list."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, UploadFile
from pydantic import ValidationError as PydanticValidationError
from starlette.datastructures import UploadFile as StarletteUploadFile

from ingestion.parsers import Limits
from kb import attachments
from kb.errors import ValidationFailed
from kb.models import AttachmentPublic
from review_workflow.upload import pack_from_upload

from api.deps import Admins, Authors, Editors, Reviewers, RuntimeDep, SessionDep
from api.schemas import RejectIn
from review_workflow import attachments as draft_attachments
from review_workflow import service as workflow
from review_workflow.models import ApproveIn, PackIn, PackPublic, PackState

router = APIRouter(tags=["packs"])


PACK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PackIn.model_json_schema(), "example": {
                "title": "理财起购金额调整",
                "items": [{"op": "update", "entry_id": "KB-P030", "base_version": 1, "title": "云岭稳享30天持有期理财",
                           "category": "product", "product_type": "wealth", "risk_level": "R2",
                           "body": "起购金额调整为1元。理财非存款、产品有风险、投资须谨慎。",
                           "facts": {"起购金额": {"value": "1", "unit": "元"}}}]}},
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary", "description": ".md .xlsx .csv .docx .pdf .zip"},
                "title": {"type": "string"}}}},
        },
    }
}


@router.post("/packs", response_model=PackPublic, status_code=201, openapi_extra=PACK_BODY)
async def create(request: Request, caller: Authors, runtime: RuntimeDep, session: SessionDep) -> PackPublic:
    """Expert: create a draft pack from JSON items, or from an uploaded file (multipart `file`); items are
    validated and linted now (findings in the response); a file with any error → 422, nothing saved."""
    if request.headers.get("content-type", "").startswith("multipart/"):
        form = await request.form()
        upload_file = form.get("file")
        if not isinstance(upload_file, StarletteUploadFile):
            raise ValidationFailed("缺少文件 multipart request needs a `file`", errors=[{"field": "file", "message": "missing"}])
        return await _from_file(upload_file, form.get("title"), caller, runtime, session)
    try:
        body = PackIn.model_validate_json(await request.body())
    except PydanticValidationError as exc:
        errors = [{"field": ".".join(map(str, e["loc"])) or "body", "message": e["msg"]} for e in exc.errors()]
        raise ValidationFailed("请求无效 invalid pack: " + ", ".join(e["field"] for e in errors), errors=errors) from None
    pack = workflow.create_pack(session=session, data=body, actor=caller.actor)
    return workflow.to_public(session=session, pack=pack)


@router.post("/packs/upload", response_model=PackPublic, status_code=201)
async def upload(caller: Authors, runtime: RuntimeDep, session: SessionDep, file: UploadFile,
                 title: Annotated[str | None, Form()] = None) -> PackPublic:
    """Expert: upload a pack file (.md .xlsx .csv .docx .pdf .zip); any error → 422 naming file, sheet and row, nothing saved."""
    return await _from_file(file, title, caller, runtime, session)


@router.put("/packs/{pack_id}/file", response_model=PackPublic)
async def replace_file(pack_id: str, caller: Authors, runtime: RuntimeDep, session: SessionDep, file: UploadFile,
                       title: Annotated[str | None, Form()] = None) -> PackPublic:
    """Expert: upload a fixed file over your draft; its items and attachments are replaced (403 not yours,
    409 not a draft, 422 with every error and the draft unchanged)."""
    return await _from_file(file, title, caller, runtime, session, replace_pack_id=pack_id)


@router.get("/packs/{pack_id}/attachments", response_model=list[AttachmentPublic])
def pack_attachments(pack_id: str, caller: Editors, session: SessionDep) -> list[AttachmentPublic]:
    """Files and links that came with a pack (download: `GET /attachments/{id}`)."""
    workflow.get_pack(session=session, pack_id=pack_id)
    return attachments.for_pack(session=session, pack_id=pack_id)


@router.post("/packs/{pack_id}/attachments", response_model=AttachmentPublic, status_code=201)
async def add_attachment(pack_id: str, caller: Authors, runtime: RuntimeDep, session: SessionDep,
                         file: UploadFile | None = None, url: Annotated[str | None, Form()] = None,
                         title: Annotated[str | None, Form()] = None,
                         position: Annotated[int | None, Form(ge=0)] = None) -> AttachmentPublic:
    """Expert: attach a file (images, video, audio, PDF, DOCX, XLSX) or an http(s) `url` to your draft —
    to its item at `position` (0-based) or the pack as a whole. 403 not yours, 409 not a draft, 422 bad input."""
    limit = runtime.settings.upload_max_bytes
    content = await file.read(limit + 1) if file is not None else None
    row = draft_attachments.add_attachment(
        session=session, pack_id=pack_id, actor=caller.actor, data_dir=runtime.settings.resolved_data_dir,
        filename=file.filename if file is not None else None, content=content, url=url or None, title=title,
        position=position, max_bytes=limit)
    return attachments.to_public(row)


@router.delete("/packs/{pack_id}/attachments/{attachment_id}", status_code=204)
def remove_attachment(pack_id: str, attachment_id: str, caller: Authors, session: SessionDep) -> None:
    """Expert: take an attachment off your draft (403 not yours, 404 not in this pack, 409 not a draft)."""
    draft_attachments.remove_attachment(session=session, pack_id=pack_id, attachment_id=attachment_id, actor=caller.actor)


async def _from_file(file, title, caller, runtime, session, replace_pack_id=None) -> PackPublic:  # type: ignore[no-untyped-def]
    limits = Limits(max_upload_bytes=runtime.settings.upload_max_bytes)
    data = await file.read(limits.max_upload_bytes + 1)
    pack, _ = pack_from_upload(session=session, filename=file.filename or "upload", data=data,
                               title=str(title) if title else None, actor=caller.actor, limits=limits,
                               replace_pack_id=replace_pack_id, data_dir=runtime.settings.resolved_data_dir)
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
