"""An expert adds a file or a link to a draft by hand (a screenshot for a typed-in item, a training
video's address) or takes one off; uploads of pack files bring theirs through `review_workflow.upload`.
Only the draft's submitter, only while it is a draft; every change is audited."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from sqlalchemy import delete
from sqlmodel import Session, col, select

from ingestion.parsers import MEDIA_EXTENSIONS
from kb import attachments as kb_attachments
from kb import audit
from kb.errors import NotFound, ValidationFailed
from kb.models import Actor, Attachment, AttachmentLink
from review_workflow import service as workflow
from review_workflow.models import ItemOp, PackItem, UpdatePack

# What may be attached on its own: media (as in a ZIP) and the document formats packs come in.
FILE_EXTENSIONS = (*MEDIA_EXTENSIONS, ".pdf", ".docx", ".xlsx")


def add_attachment(*, session: Session, pack_id: str, actor: Actor, data_dir: Path, filename: str | None = None,
                   content: bytes | None = None, url: str | None = None, title: str | None = None,
                   position: int | None = None, max_bytes: int = 50 * 1024 * 1024) -> Attachment:
    """Attach one file (`filename` + `content`) or one http(s) link (`url`) to the draft, to its item at
    `position` (0-based) or, without one, to the pack as a whole. Errors → nothing stored."""
    pack = _own_draft(session, pack_id, actor)
    _check_position(session, pack, position)
    if (url is None) == (content is None):
        raise ValidationFailed("请上传一个文件或填写一个链接 give either a file or a link",
                               errors=[{"field": "file", "message": "file or url, not both"}])
    if url is not None:
        row = kb_attachments.add_link(session=session, url=url, actor=actor.username, pack_id=pack.id, title=title)
    else:
        name = kb_attachments.clean_filename(filename or "")
        suffix = PurePosixPath(name).suffix.lower()
        if suffix not in FILE_EXTENSIONS:
            raise ValidationFailed(
                f"不支持的附件类型 {suffix or '（无扩展名）'} unsupported attachment type; allowed: " + " ".join(FILE_EXTENSIONS),
                errors=[{"field": "file", "message": "unsupported type"}])
        if not content:
            raise ValidationFailed("附件为空 the file is empty", errors=[{"field": "file", "message": "empty"}])
        if len(content) > max_bytes:
            raise ValidationFailed(f"附件超过上限 {max_bytes} 字节 attachment larger than {max_bytes} bytes",
                                   errors=[{"field": "file", "message": "too large"}])
        row = kb_attachments.store_file(session=session, root=data_dir, filename=name, content=content,
                                        actor=actor.username, pack_id=pack.id)
    session.flush()
    kb_attachments.link_item(session=session, attachment=row, pack_id=pack.id, position=position)
    audit.append(session=session, actor=actor.username, action="pack.attachment_add", object_type="pack",
                 object_id=pack.id, detail={"attachment_id": row.id, "kind": row.kind, "filename": row.filename,
                                            "sha256": row.sha256, "url": row.url, "position": position})
    return row


def remove_attachment(*, session: Session, pack_id: str, attachment_id: str, actor: Actor) -> None:
    """Take an attachment off the draft (its stored bytes go at the next `zhiku attachments sweep` if
    nothing else refers to them)."""
    pack = _own_draft(session, pack_id, actor)
    row = kb_attachments.get_attachment(session=session, attachment_id=attachment_id)
    if row.pack_id != pack.id:
        raise NotFound(f"该更新包没有此附件 attachment {attachment_id[:40]!r} is not in this pack",
                       details={"pack_id": pack.id, "attachment_id": attachment_id[:40]})
    session.execute(delete(AttachmentLink).where(col(AttachmentLink.attachment_id) == row.id,
                                                 col(AttachmentLink.version_id).is_(None)))
    session.delete(row)
    audit.append(session=session, actor=actor.username, action="pack.attachment_remove", object_type="pack",
                 object_id=pack.id, detail={"attachment_id": row.id, "filename": row.filename, "sha256": row.sha256})
    session.flush()


def _own_draft(session: Session, pack_id: str, actor: Actor) -> UpdatePack:
    return workflow.own_draft(session=session, pack_id=pack_id, actor=actor,
                              not_yours="只能修改自己草稿的附件 only the submitter may change this draft's attachments",
                              not_draft="只有草稿可以增删附件（当前状态「{state}」）only a draft's attachments can change; "
                                        "this pack is {state!r}")


def _check_position(session: Session, pack: UpdatePack, position: int | None) -> None:
    if position is None:
        return
    item = session.exec(select(PackItem).where(PackItem.pack_id == pack.id, PackItem.position == position)).first()
    if item is None or item.op == ItemOp.RETIRE:
        raise ValidationFailed(f"第 {position} 项不存在或是下架项 item {position} does not exist or retires an entry",
                               errors=[{"field": "position", "message": "no such item to attach to"}])
