"""Update packs from files: parse, preview (diff against the current version, lint, errors), save a
draft only when the whole file is clean. Re-uploading identical content changes nothing; uploading a
fixed file over a draft replaces its items and attachments."""
from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlmodel import Session

from ingestion.parsers import Attachment, Limits, ParsedItem, ParsedPack, parse_upload
from kb import attachments as kb_attachments
from kb import service as kb_service
from kb.errors import ValidationFailed
from kb.models import Actor, Entry, EntryCreate, VersionContent
from review_workflow import lint
from review_workflow import service as workflow
from review_workflow.models import ItemOp, UpdatePack

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass
class PreviewItem:
    position: int
    op: str
    entry_id: str | None
    title: str
    source: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    body_diff: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    unchanged: bool = False
    attachments: list[str] = field(default_factory=list)


@dataclass
class Preview:
    file: str
    items: list[PreviewItem]
    errors: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.errors


def preview_upload(*, session: Session, filename: str, data: bytes, limits: Limits = Limits()) -> tuple[Preview, ParsedPack]:
    """What the file would change, item by item, with lint findings and every error (file, sheet, row)."""
    parsed = parse_upload(filename, data, limits=limits)
    errors = [asdict(e) for e in parsed.errors]
    items = []
    for position, item in enumerate(parsed.items):
        data_ = dict(item.data)
        entry_id = data_.get("entry_id") or data_.get("id")
        preview = PreviewItem(position, item.op, entry_id, str(data_.get("title", "")), item.source)
        for ref in item.attachments:
            try:
                target = _resolve(ref, parsed.attachments, item.source)
                preview.attachments.append(target if isinstance(target, str) else target.name)
            except ValidationFailed as exc:
                errors.append({"file": item.source, "field": "attachments", "message": exc.message})
        try:
            if item.op == ItemOp.RETIRE:
                current = _current(session, entry_id)
                preview.title = current.title if current else preview.title
            else:
                model = EntryCreate if item.op == ItemOp.CREATE else VersionContent
                content = model.model_validate({k: v for k, v in data_.items() if k not in ("entry_id", "base_version")})
                stored = content.model_dump(mode="json")
                preview.findings = [asdict(f) for f in lint.lint_content(stored)]
                current = _current(session, entry_id) if item.op == ItemOp.UPDATE else None
                if current is not None:
                    # Compare in the stored form (dates as dates), starting from the current start:
                    # approval decides the new start, so it is not a change the file makes.
                    fields, facts, body = kb_service.diff_contents(
                        {n: getattr(current, n) for n in kb_service.CONTENT_FIELDS},
                        kb_service.version_fields(content, valid_from=current.valid_from),
                    )
                    rows, _ = kb_service.change_summary(fields, facts, body)
                    preview.changes, preview.body_diff = rows, body
                    preview.unchanged = not rows
        except ValidationFailed as exc:
            errors.append({"file": item.source, "message": exc.message})
        except ValueError as exc:
            errors.append({"file": item.source, "message": str(exc)})
        items.append(preview)
    return Preview(filename, items, errors), parsed


def _source_file(source: str) -> str:
    """`包.zip/条目/a.md:1`, `a.xlsx!更新条目:row 5` → the file's path in the upload."""
    head, sep, tail = source.rpartition(":")
    path = head if sep and "/" not in tail else source
    return path.split("!", 1)[0]


def _resolve(ref: str, files: list[Attachment], source: str = "") -> Attachment | str:
    """An item's attachment reference: an http(s) link, or a file of the same upload named by its path
    relative to the naming file, its path in the archive (or the tail of it, such as 视频/开户.mp4) or its
    file name; else ValidationFailed."""
    text = ref.strip().replace("\\", "/")
    if _SCHEME.match(text) and not re.match(r"^[A-Za-z]:/", text):
        return kb_attachments.check_url(text)
    relative = posixpath.normpath(posixpath.join(posixpath.dirname(_source_file(source)), text)) if source else ""
    found = [a for a in files if a.path and a.path == relative]
    wanted = PurePosixPath(text.removeprefix("./")).as_posix()
    if not found and not wanted.startswith(("/", "../")):
        found = [a for a in files if (a.path or a.name) == wanted or (a.path or a.name).endswith("/" + wanted)]
    if not found and "/" not in wanted:
        found = [a for a in files if a.name == wanted]
    if len({id(a) for a in found}) == 1:
        return found[0]
    problem = "附件在上传文件中不存在 attachment not found in the upload" if not found else \
        "附件名称不唯一，请写出路径 attachment name is ambiguous; give its path"
    raise ValidationFailed(f"{problem}: {ref[:200]}", errors=[{"field": "attachments", "message": problem}])


def _current(session: Session, entry_id: str | None):  # type: ignore[no-untyped-def]
    if not entry_id or session.get(Entry, entry_id) is None:
        return None
    return kb_service.entry_as_of(session=session, entry_id=entry_id)


def pack_from_upload(*, session: Session, filename: str, data: bytes, actor: Actor, title: str | None = None,
                     limits: Limits = Limits(), replace_pack_id: str | None = None,
                     data_dir: Path | None = None) -> tuple[UpdatePack, Preview]:
    """Save the file as a draft pack (or replace a draft's items); any error → ValidationFailed, nothing saved.

    Items whose content equals the current version are left out, so an identical re-upload yields an
    empty pack rather than new versions. Replacing is for the draft's submitter only (PermissionDenied)
    and only while it is a draft (InvalidTransition). With `data_dir` the upload's attachments (originals,
    media of a ZIP, links) are stored under it and tied to their items."""
    replacing = _replaceable(session, replace_pack_id, actor) if replace_pack_id else None
    preview, parsed = preview_upload(session=session, filename=filename, data=data, limits=limits)
    if not preview.ok:
        raise ValidationFailed(f"{filename}: 文件有 {len(preview.errors)} 处错误，未保存 file has errors, nothing saved",
                               errors=[{"field": "file", **e} for e in preview.errors])
    kept = [item for item, shown in zip(parsed.items, preview.items, strict=True) if not shown.unchanged]
    body = {"title": title or (replacing.title if replacing else f"文件导入：{filename}"),
            "items": [{"op": item.op, **item.data} for item in kept]}
    if replacing is not None:
        pack = workflow.edit_pack(session=session, pack_id=replacing.id, data=body, actor=actor)
        pack.source = filename[:255]
        session.add(pack)
        kb_attachments.remove_pack_attachments(session=session, pack_id=pack.id)
    else:
        pack = workflow.create_pack(session=session, data=body, actor=actor, source=filename)
    if data_dir is not None:
        _store_attachments(session, Path(data_dir), pack, kept, parsed.attachments, actor)
    return pack, preview


def _replaceable(session: Session, pack_id: str, actor: Actor) -> UpdatePack:
    return workflow.own_draft(session=session, pack_id=pack_id, actor=actor,
                              not_yours="只能替换自己的草稿 only the submitter may replace this draft",
                              not_draft="只有草稿可以重新上传替换（当前状态「{state}」）only a draft can be replaced by a "
                                        "new file; this pack is {state!r}")


def _store_attachments(session: Session, root: Path, pack: UpdatePack, items: list[ParsedItem],
                       files: list[Attachment], actor: Actor) -> None:
    """Each file once per pack (its bytes once per content), each link once per item; files no item names
    stay with the pack."""
    stored: dict[int, Any] = {}
    for position, item in enumerate(items):
        if item.op == ItemOp.RETIRE:
            continue
        for ref in dict.fromkeys(item.attachments):
            target = _resolve(ref, files, item.source)
            if isinstance(target, str):
                row = kb_attachments.add_link(session=session, url=target, actor=actor.username, pack_id=pack.id)
            else:
                if id(target) not in stored:
                    stored[id(target)] = kb_attachments.store_file(
                        session=session, root=root, filename=target.name, content=target.content,
                        actor=actor.username, pack_id=pack.id, media_type=target.media_type)
                row = stored[id(target)]
            kb_attachments.link_item(session=session, attachment=row, pack_id=pack.id, position=position)
    for target in files:
        if id(target) not in stored:
            row = kb_attachments.store_file(session=session, root=root, filename=target.name, content=target.content,
                                            actor=actor.username, pack_id=pack.id, media_type=target.media_type)
            kb_attachments.link_item(session=session, attachment=row, pack_id=pack.id, position=None)
    session.flush()
