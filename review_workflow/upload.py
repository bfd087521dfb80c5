"""Update packs from files: parse, preview (diff against the current version, lint, errors), save a
draft only when the whole file is clean. Re-uploading identical content changes nothing."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlmodel import Session

from ingestion.parsers import Limits, ParsedPack, parse_upload
from kb import service as kb_service
from kb.errors import ValidationFailed
from kb.models import Actor, Entry, EntryCreate, VersionContent
from review_workflow import lint
from review_workflow import service as workflow
from review_workflow.models import ItemOp, UpdatePack


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


def _current(session: Session, entry_id: str | None):  # type: ignore[no-untyped-def]
    if not entry_id or session.get(Entry, entry_id) is None:
        return None
    return kb_service.entry_as_of(session=session, entry_id=entry_id)


def pack_from_upload(*, session: Session, filename: str, data: bytes, actor: Actor, title: str | None = None,
                     limits: Limits = Limits(), replace_pack_id: str | None = None) -> tuple[UpdatePack, Preview]:
    """Save the file as a draft pack (or replace a draft's items); any error → ValidationFailed, nothing saved.

    Items whose content equals the current version are left out, so an identical re-upload yields an
    empty pack rather than new versions."""
    preview, parsed = preview_upload(session=session, filename=filename, data=data, limits=limits)
    if not preview.ok:
        raise ValidationFailed(f"{filename}: 文件有 {len(preview.errors)} 处错误，未保存 file has errors, nothing saved",
                               errors=[{"field": "file", **e} for e in preview.errors])
    items = [{"op": item.op, **item.data} for item, shown in zip(parsed.items, preview.items, strict=True)
             if not shown.unchanged]
    body = {"title": title or f"文件导入：{filename}", "items": items}
    if replace_pack_id:
        pack = workflow.edit_pack(session=session, pack_id=replace_pack_id, data=body, actor=actor)
    else:
        pack = workflow.create_pack(session=session, data=body, actor=actor, source=filename)
    return pack, preview
