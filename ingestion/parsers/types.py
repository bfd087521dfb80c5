"""The value types of the parsing layer (re-exported by ingestion.parsers)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ParseError:
    """One problem in an upload; `message` is Chinese + English and starts with the location."""

    file: str
    message: str
    sheet: str | None = None
    row: int | None = None
    line: int | None = None
    field: str | None = None
    refused: bool = dataclasses.field(default=False, compare=False)  # a safety refusal (archive / container checks)


@dataclass
class ParsedItem:
    """One pack item: `PackItemIn(**{"op": op, **data})` accepts it; `source` locates it for previews."""

    op: str
    data: dict[str, Any]
    source: str
    attachments: list[str] = field(default_factory=list)  # file paths in the upload, or http(s) links


@dataclass
class Attachment:
    """A file kept for download next to the entries that name it: an original document (DOCX / PDF), or an
    image / video / audio file inside a ZIP."""

    name: str
    content: bytes
    media_type: str
    path: str = ""  # where it sat in the upload ("包.zip/视频/开户.mp4"); items refer to it by this or by name


@dataclass
class ParsedPack:
    items: list[ParsedItem] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Limits:
    """Hard limits on one upload; every nested file counts against the same totals."""

    max_upload_bytes: int = 50 * 1024 * 1024
    max_total_uncompressed: int = 200 * 1024 * 1024
    max_ratio: int = 100
    max_zip_depth: int = 2
    max_files: int = 1000
    max_pdf_pages: int = 1000
