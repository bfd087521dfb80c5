"""Attachments of entries: files stored once by SHA-256 under <data_dir>/attachments/, or external links
(http/https only); linked to the pack item they came with and to the entry versions made from it."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlmodel import Session, col, select

from kb.errors import NotFound, ValidationFailed
from kb.models import Attachment, AttachmentLink, AttachmentPublic

DOWNLOAD_PATH = "/api/v1/attachments/{id}"
STORE_DIR = "attachments"
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Media types decided by us from the extension, never taken from the uploader.
MEDIA_TYPES = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
    ".mp4": "video/mp4", ".webm": "video/webm", ".mp3": "audio/mpeg", ".m4a": "audio/mp4",
}
# Never handed to a browser as what they are: they could run script in our origin.
_ACTIVE_TYPES = ("text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml",
                 "application/javascript", "text/javascript")


def media_type_for(filename: str) -> str:
    """The media type we serve a stored file as, from its extension (octet-stream when unknown)."""
    return MEDIA_TYPES.get(PurePosixPath(filename).suffix.lower(), "application/octet-stream")


def served_type(media_type: str) -> str:
    """What a download is sent as: active content (HTML, SVG, XML, script) only ever as octet-stream."""
    base = media_type.split(";", 1)[0].strip().lower()
    return "application/octet-stream" if base in _ACTIVE_TYPES or not base else base


def clean_filename(name: str) -> str:
    """The original file name without any directory part or control characters (Chinese kept)."""
    base = PurePosixPath(str(name).replace("\\", "/")).name
    base = "".join(ch for ch in unicodedata.normalize("NFC", base) if unicodedata.category(ch)[0] != "C")
    base = base.strip().strip(".") or "attachment"
    if len(base) > 255:
        stem, suffix = os.path.splitext(base)
        base = stem[: 255 - len(suffix)] + suffix
    return base


def check_url(url: str) -> str:
    """An external link attachment must be an absolute http(s) URL; anything else → ValidationFailed."""
    text = str(url).strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(ch.isspace() for ch in text):
        raise ValidationFailed(f"附件链接须为 http/https 地址 attachment links must be http(s) URLs: {text[:200]!r}",
                               errors=[{"field": "attachments", "message": "http/https only"}])
    return text


def blob_path(root: Path, sha256: str) -> Path:
    """Where the bytes with this digest live; the name is the digest alone, so no upload chooses a path."""
    if not _HEX64.fullmatch(sha256 or ""):
        raise NotFound("附件不存在 attachment file not found")
    return Path(root) / STORE_DIR / sha256[:2] / sha256


def write_blob(*, root: Path, content: bytes) -> str:
    """Store bytes once (atomically) and return their SHA-256; identical content is written once."""
    digest = hashlib.sha256(content).hexdigest()
    target = blob_path(root, digest)
    if target.exists() and target.stat().st_size == len(content):
        os.utime(target)  # fresh again: `sweep_orphans` leaves young files alone while this row commits
        return digest
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def store_file(*, session: Session, root: Path, filename: str, content: bytes, actor: str,
               pack_id: str | None = None, media_type: str | None = None) -> Attachment:
    """Keep one uploaded file: bytes under <root>/attachments/ by digest, a row with its original name."""
    name = clean_filename(filename)
    digest = write_blob(root=root, content=content)
    row = Attachment(kind="file", filename=name, media_type=media_type or media_type_for(name), size=len(content),
                     sha256=digest, pack_id=pack_id, uploaded_by=actor)
    session.add(row)
    return row


def add_link(*, session: Session, url: str, actor: str, pack_id: str | None = None, title: str | None = None) -> Attachment:
    """An external link (e.g. a training video on the bank's video platform); http/https only."""
    checked = check_url(url)
    row = Attachment(kind="link", filename=clean_filename(title or checked.rsplit("/", 1)[-1] or checked)[:255],
                     media_type="text/uri-list", size=0, url=checked, pack_id=pack_id, uploaded_by=actor)
    session.add(row)
    return row


def link_item(*, session: Session, attachment: Attachment, pack_id: str, position: int | None) -> None:
    """Tie an attachment to one item of its pack (position None: the pack as a whole)."""
    session.add(AttachmentLink(attachment_id=attachment.id, pack_id=pack_id, position=position))


def remove_pack_attachments(*, session: Session, pack_id: str) -> int:
    """Forget a draft's attachments before its file is replaced (the stored bytes stay: others may share
    them; `sweep_orphans` removes bytes no attachment refers to any more)."""
    ids = list(session.exec(select(Attachment.id).where(Attachment.pack_id == pack_id)).all())
    session.execute(delete(AttachmentLink).where(col(AttachmentLink.pack_id) == pack_id,
                                                 col(AttachmentLink.version_id).is_(None)))
    if ids:
        session.execute(delete(Attachment).where(col(Attachment.id).in_(ids)))
    return len(ids)


def pending_links(*, session: Session, pack_id: str) -> dict[int, list[str]]:
    """Attachment ids per item position of a pack, not yet tied to a version (one query per pack)."""
    rows = session.exec(select(AttachmentLink.position, AttachmentLink.attachment_id).where(
        AttachmentLink.pack_id == pack_id, col(AttachmentLink.version_id).is_(None),
        col(AttachmentLink.position).is_not(None)).order_by(col(AttachmentLink.id))).all()
    found: dict[int, list[str]] = {}
    for position, attachment_id in rows:
        found.setdefault(int(position), []).append(attachment_id)
    return found


def link_version(*, session: Session, attachment_ids: Iterable[str], version_id: str, entry_id: str,
                 pack_id: str | None = None, position: int | None = None, inherit_from: str | None = None) -> None:
    """At approval: the item's attachments (plus those of the version it replaces) go with the new version."""
    wanted = list(attachment_ids)
    if inherit_from:
        wanted = _version_attachment_ids(session, inherit_from) + wanted
    for attachment_id in dict.fromkeys(wanted):
        session.add(AttachmentLink(attachment_id=attachment_id, pack_id=pack_id, position=position,
                                   entry_id=entry_id, version_id=version_id))


def inherit(*, session: Session, from_version_id: str, to_version_id: str, entry_id: str) -> None:
    """A version made from another (publish now, rollback) keeps that version's attachments."""
    for attachment_id in _version_attachment_ids(session, from_version_id):
        session.add(AttachmentLink(attachment_id=attachment_id, entry_id=entry_id, version_id=to_version_id))


def _version_attachment_ids(session: Session, version_id: str) -> list[str]:
    rows = session.exec(select(AttachmentLink.attachment_id).where(AttachmentLink.version_id == version_id)
                        .order_by(col(AttachmentLink.id))).all()
    return list(dict.fromkeys(rows))


def to_public(attachment: Attachment) -> AttachmentPublic:
    url = attachment.url if attachment.kind == "link" and attachment.url else DOWNLOAD_PATH.format(id=attachment.id)
    return AttachmentPublic(id=attachment.id, kind=attachment.kind, filename=attachment.filename,
                            media_type=attachment.media_type, size=attachment.size, url=url)


def for_versions(*, session: Session, version_ids: Iterable[str]) -> dict[str, list[AttachmentPublic]]:
    """Attachments of each of these versions, in the order they were added."""
    ids = list(dict.fromkeys(version_ids))
    found: dict[str, list[AttachmentPublic]] = {v: [] for v in ids}
    if not ids:
        return found
    rows = session.exec(select(AttachmentLink.version_id, Attachment).join(Attachment, col(Attachment.id) == AttachmentLink.attachment_id)
                        .where(col(AttachmentLink.version_id).in_(ids)).order_by(col(AttachmentLink.id))).all()
    seen: set[tuple[str, str]] = set()
    for version_id, attachment in rows:
        if version_id and (version_id, attachment.id) not in seen:
            seen.add((version_id, attachment.id))
            found[version_id].append(to_public(attachment))
    return found


def for_version(*, session: Session, version_id: str) -> list[AttachmentPublic]:
    """Attachments an entry version carries (shown on its card)."""
    return for_versions(session=session, version_ids=[version_id])[version_id]


def for_entry(*, session: Session, entry_id: str, at: datetime | None = None) -> list[AttachmentPublic]:
    """Attachments of the entry's version in force now (or at `at`); none when no version is."""
    from kb import service

    version = service.entry_as_of(session=session, entry_id=entry_id, at=at)
    return for_version(session=session, version_id=version.id) if version is not None else []


def for_pack(*, session: Session, pack_id: str) -> list[AttachmentPublic]:
    """Attachments that came with a pack."""
    rows = session.exec(select(Attachment).where(Attachment.pack_id == pack_id).order_by(col(Attachment.created_at),
                                                                                          col(Attachment.filename))).all()
    return [to_public(a) for a in rows]


def get_attachment(*, session: Session, attachment_id: str) -> Attachment:
    row = session.get(Attachment, attachment_id) if len(attachment_id) <= 36 else None
    if row is None:
        raise NotFound(f"附件不存在 attachment {attachment_id[:40]!r} not found", details={"attachment_id": attachment_id[:40]})
    return row


def open_download(*, session: Session, root: Path, attachment_id: str) -> tuple[Attachment, Path | None]:
    """The attachment and the path of its bytes (None for an external link); a lost file is NotFound."""
    row = get_attachment(session=session, attachment_id=attachment_id)
    if row.kind == "link":
        return row, None
    path = blob_path(root, row.sha256 or "")
    if not path.is_file():
        raise NotFound(f"附件文件已丢失 attachment file missing: {row.filename}", details={"attachment_id": row.id})
    return row, path


SWEEP_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class SweepReport:
    files_removed: int
    bytes_freed: int
    kept_recent: int  # unreferenced, but younger than the grace period (an upload may be committing)
    referenced: int


def sweep_orphans(*, session: Session, root: Path, grace: timedelta = SWEEP_GRACE, now: datetime | None = None,
                  dry_run: bool = False) -> SweepReport:
    """Delete stored bytes that no attachment row refers to (a replaced draft's files), and upload temp
    files left by a crash. Only files older than `grace` go: a file written by an upload whose row is not
    committed yet is younger than that, and bytes another row refers to are never touched."""
    store = Path(root) / STORE_DIR
    referenced = set(session.exec(select(Attachment.sha256).where(col(Attachment.sha256).is_not(None))).all())
    cutoff = (now or datetime.now()).timestamp() - grace.total_seconds()
    removed = freed = recent = kept = 0
    for path in sorted(store.glob("*/*")) if store.is_dir() else []:
        if not path.is_file() or path.is_symlink():
            continue
        if _HEX64.fullmatch(path.name) and path.name in referenced:
            kept += 1
            continue
        if not (_HEX64.fullmatch(path.name) or path.name.startswith(".upload-")):
            continue  # not ours: leave it
        stat = path.stat()
        if stat.st_mtime > cutoff:
            recent += 1
            continue
        if not dry_run:
            path.unlink(missing_ok=True)
        removed += 1
        freed += stat.st_size
    return SweepReport(removed, freed, recent, kept)
