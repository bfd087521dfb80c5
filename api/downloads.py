"""An attachment as an HTTP download: the one response the API and the pages both send."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlmodel import Session

from kb import attachments


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback and the real (Chinese) name as RFC 5987 `filename*`."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in filename) or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download_response(*, session: Session, root: Path, attachment_id: str) -> Response:
    """The stored file (always a download, never shown inline, sandboxed), or a redirect for a link."""
    row, path = attachments.open_download(session=session, root=root, attachment_id=attachment_id)
    if path is None:
        return RedirectResponse(row.url or "", status_code=307, headers={"Cache-Control": "private, no-store"})
    return FileResponse(path, media_type=attachments.served_type(row.media_type), headers={
        "Content-Disposition": content_disposition(row.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    })
