"""Attachments (original documents, images, training videos, links): download for signed-in staff only."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import RuntimeDep, SessionDep, Staff
from api.downloads import download_response

router = APIRouter(tags=["attachments"])


@router.get("/attachments/{attachment_id}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "the file, as a download"},
                       307: {"description": "an external link attachment"}})
def download(attachment_id: str, caller: Staff, runtime: RuntimeDep, session: SessionDep) -> Response:
    """Download an attachment (always as a file, never shown inline); a link attachment redirects to its URL."""
    return download_response(session=session, root=runtime.settings.resolved_data_dir, attachment_id=attachment_id)
