"""Parsers turn uploaded files into pack items (dicts the kb validates); they never write anything.

`parse_upload(filename, data)` is the entry point: it never raises for bad content; every problem becomes a
`ParseError` naming the file (and sheet / row / line / field). The caller must refuse to save a pack whose
`ParsedPack.errors` is not empty. Formats, by extension (the content is sniffed too):

  .md            one entry per file (YAML front matter + Markdown body, see markdown.py); `op:` in the front
                 matter (新增/修改/下线 or create/update/retire, default create); update/retire need `id` and
                 `base_version`.
  .xlsx / .csv   the template in tabular.py (write_template writes it); one row per item.
  .docx / .pdf   unstructured documents split at headings into `create` items of category process; the
                 original is kept as an Attachment (documents.py).
  .zip           any of the above, checked member by member before anything is decompressed (archive.py);
                 any refused member refuses the whole archive (no items from it). Images, videos and audio
                 (MEDIA_EXTENSIONS) inside a ZIP become Attachments that items name (front matter `attachments:`,
                 the 附件 column) by path relative to the naming file, by path in the archive, or by file name.
Refused outright: .xlsm/.xltm/.xls/.doc/.docm and any other extension.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from ingestion.parsers.archive import Budget, read_all
from ingestion.parsers.common import build_item, decode_text, error
from ingestion.parsers.types import Attachment, Limits, ParsedItem, ParsedPack, ParseError

__all__ = ["Attachment", "Limits", "ParsedItem", "ParsedPack", "ParseError", "parse_upload", "write_template",
           "SUPPORTED_EXTENSIONS", "MEDIA_EXTENSIONS"]

SUPPORTED_EXTENSIONS = (".md", ".markdown", ".csv", ".xlsx", ".docx", ".pdf", ".zip")
# Kept as attachments when they sit in a ZIP (never parsed, never served inline); SVG is not among them.
MEDIA_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".mp4", ".webm", ".mp3", ".m4a")
REFUSED = {
    ".xlsm": "含宏的工作簿不被接受，请另存为 .xlsx macro-enabled workbooks are refused; save as .xlsx",
    ".xltm": "含宏的模板不被接受，请另存为 .xlsx macro-enabled templates are refused; save as .xlsx",
    ".docm": "含宏的文档不被接受，请另存为 .docx macro-enabled documents are refused; save as .docx",
    ".xls": "旧版 .xls 不被接受，请另存为 .xlsx legacy .xls is not supported; save as .xlsx",
    ".doc": "旧版 .doc 不被接受，请另存为 .docx legacy .doc is not supported; save as .docx",
}
# Archive clutter skipped silently: macOS resource forks, Finder / Explorer metadata, Office lock files.
IGNORED = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")


def write_template(path: Path | str) -> Path:
    """Write the XLSX update-pack template (needs openpyxl): 更新条目 (headers + one example row) and 填写说明."""
    from ingestion.parsers.tabular import write_template as write

    return write(path)


def parse_upload(filename: str, data: bytes, *, limits: Limits = Limits()) -> ParsedPack:
    """Parse one uploaded file into pack items, errors and kept attachments; never raises for bad content."""
    pack = ParsedPack()
    name = PurePosixPath(str(filename).replace("\\", "/")).name or "upload"
    if len(data) > limits.max_upload_bytes:
        pack.errors.append(error(name, refused=True, message=f"文件大小 {len(data)} 字节超过上限 {limits.max_upload_bytes} "
                                       f"upload of {len(data)} bytes exceeds the limit of {limits.max_upload_bytes}"))
        return pack
    _parse(name, data, Budget.start(limits), depth=0, pack=pack)
    return pack


def _ignored(path: str) -> bool:
    base = PurePosixPath(path).name
    return path.startswith("__MACOSX/") or "/__MACOSX/" in path or base in IGNORED or base.startswith("~$")


def _parse(file: str, data: bytes, budget: Budget, *, depth: int, pack: ParsedPack) -> None:
    ext = PurePosixPath(file).suffix.lower()
    try:
        if ext in REFUSED:
            pack.errors.append(error(file, REFUSED[ext]))
        elif ext in (".md", ".markdown"):
            _collect(pack, *_parse_markdown(file, data))
        elif ext == ".csv":
            from ingestion.parsers.tabular import parse_csv

            _collect(pack, *parse_csv(file, data))
        elif ext == ".xlsx":
            from ingestion.parsers.tabular import parse_xlsx

            _collect(pack, *parse_xlsx(file, data, budget))
        elif ext == ".docx":
            from ingestion.parsers.documents import parse_docx

            items, errors, attachments = parse_docx(file, data, budget)
            _collect(pack, items, errors, attachments)
        elif ext == ".pdf":
            from ingestion.parsers.documents import parse_pdf

            items, errors, attachments = parse_pdf(file, data, budget.limits.max_pdf_pages)
            _collect(pack, items, errors, attachments)
        elif ext == ".zip":
            _parse_zip(file, data, budget, depth=depth + 1, pack=pack)
        elif ext in MEDIA_EXTENSIONS and depth > 0:
            from kb.attachments import media_type_for

            pack.attachments.append(Attachment(name=PurePosixPath(file).name, content=data,
                                               media_type=media_type_for(file), path=file))
        else:
            shown = ext or "（无扩展名 none）"
            pack.errors.append(error(file, f"不支持的文件类型 {shown} unsupported file type; supported: "
                                           + " ".join(SUPPORTED_EXTENSIONS)))
    except RecursionError:
        pack.errors.append(error(file, "文件结构嵌套过深 the file is nested too deeply"))


def _collect(pack: ParsedPack, items: list[ParsedItem], errors: list[ParseError],
             attachments: list[Attachment] | None = None) -> None:
    pack.items.extend(items)
    pack.errors.extend(errors)
    pack.attachments.extend(attachments or [])


def _parse_zip(file: str, data: bytes, budget: Budget, *, depth: int, pack: ParsedPack) -> None:
    """A refused member refuses the archive: nothing parsed from it is kept."""
    if depth > budget.limits.max_zip_depth:
        pack.errors.append(error(file, refused=True, message=f"压缩包嵌套超过 {budget.limits.max_zip_depth} 层 nested archives deeper than "
                                       f"{budget.limits.max_zip_depth} levels"))
        return
    members, errors = read_all(file, data, budget, depth=depth)
    if errors:
        pack.errors.extend(errors)
        return
    inner = ParsedPack()
    for name, shown, content in members:
        if _ignored(name):
            continue
        _parse(shown, content, budget, depth=depth, pack=inner)
    pack.errors.extend(inner.errors)
    if any(e.refused for e in inner.errors):
        return
    pack.items.extend(inner.items)
    pack.attachments.extend(inner.attachments)


def _parse_markdown(file: str, data: bytes) -> tuple[list[ParsedItem], list[ParseError]]:
    from kb.errors import ValidationFailed
    from ingestion.parsers.markdown import parse_entry_markdown

    text, _ = decode_text(data) if b"\x00" not in data else (None, None)
    if text is None:
        return [], [error(file, "无法识别编码，请以 UTF-8 保存 cannot decode the file; save it as UTF-8")]
    try:
        fields = parse_entry_markdown(text, source=file)
    except ValidationFailed as exc:
        line = next((e.get("line") for e in exc.errors if e.get("line")), None)
        detail = exc.message.split(": ", 1)[-1]
        return [], [error(file, detail, line=line, field="front_matter")]
    refs = fields.pop("attachments", None) if "attachments" in fields else fields.pop("附件", None)
    op = fields.pop("op", None) if "op" in fields else fields.pop("操作", None)
    entry_id = fields.pop("id", None) or fields.pop("entry_id", None)
    base_version = fields.pop("base_version", None) if "base_version" in fields else fields.pop("基准版本", None)
    allowed = {"title", "body", "summary", "category", "product_type", "risk_level", "facts", "script_template",
               "tags", "synonyms", "related", "valid_from", "valid_to", "review_by", "product_code",
               "owner_department", "reason"}
    unknown = sorted(str(k) for k in fields if k not in allowed)
    if unknown:
        return [], [error(file, "前置元数据含未知字段 unknown front-matter keys: " + ", ".join(unknown), line=1)]
    item, errors = build_item(op, fields, file=file, source=f"{file}:1", entry_id=entry_id, base_version=base_version,
                              line=1)
    if item is not None and refs:
        if isinstance(refs, str):
            refs = [refs]
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            return [], [error(file, "attachments 须为文件路径或链接的列表 attachments must be a list of paths or links",
                              line=1, field="attachments")]
        item.attachments.extend(r.strip() for r in refs if r.strip())
    return _one((item, errors))


def _one(result: tuple[ParsedItem | None, list[ParseError]]) -> tuple[list[ParsedItem], list[ParseError]]:
    item, errors = result
    return ([item] if item else []), errors
