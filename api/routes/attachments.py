"""Attachments (original documents, images, training videos, links): download for signed-in staff only."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlmodel import Session

from api.deps import RuntimeDep, SessionDep, Staff
from kb import attachments

router = APIRouter(tags=["attachments"])


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback and the real (Chinese) name as RFC 5987 `filename*`."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in filename) or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get("/attachments/{attachment_id}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "the file, as a download"},
                       307: {"description": "an external link attachment"}})
def download(attachment_id: str, caller: Staff, runtime: RuntimeDep, session: SessionDep) -> Response:
    """Download an attachment (always as a file, never shown inline); a link attachment redirects to its URL."""
    return download_response(session=session, root=runtime.settings.resolved_data_dir, attachment_id=attachment_id)


def download_response(*, session: Session, root: Path, attachment_id: str) -> Response:
    """The download of one attachment, for the API and the pages alike."""
    row, path = attachments.open_download(session=session, root=root, attachment_id=attachment_id)
    if path is None:
        return RedirectResponse(row.url or "", status_code=307, headers={"Cache-Control": "private, no-store"})
    return FileResponse(path, media_type=attachments.served_type(row.media_type), headers={
        "Content-Disposition": content_disposition(row.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    })
