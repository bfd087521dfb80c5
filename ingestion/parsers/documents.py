"""Unstructured documents (DOCX / PDF) split into `create` items of category `process` (业务流程).

DOCX: paragraphs styled as headings (Heading 1–9 / 标题 1–9, or with an outline level) start sections; the
topmost heading level found splits the document, deeper headings stay in the body as Markdown `##`. A
`Title` paragraph names the document. Tables become `a | b | c` lines.
PDF: text lines that look like headings start sections; the first kind present, in this order, splits:
第X章 → 第X条 → 一、 → 1. / 1、 (the last two only for lines of at most 40 characters that do not end in
。；，). Bare page numbers (`3`, `- 3 -`, `第 3 页`) are dropped. Encrypted PDFs are refused.
Text before the first heading, or the whole text when there are no headings, becomes one entry titled
with the document title (DOCX Title paragraph / PDF metadata title) or else the file name without extension.
The original file is returned as an Attachment.
"""
from __future__ import annotations

import io
import re
from pathlib import PurePosixPath
from typing import Any

from ingestion.parsers.archive import Budget, read_all
from ingestion.parsers.common import build_item, error
from ingestion.parsers.types import Attachment, ParsedItem, ParseError

DOCUMENT_CATEGORY = "process"
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF_TYPE = "application/pdf"
MAX_TITLE = 60


def stem(file: str) -> str:
    return PurePosixPath(file.replace("\\", "/")).stem or file


def short_title(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TITLE else text[:MAX_TITLE] + "…"


def sections_to_items(file: str, title: str, preamble: list[str],
                      sections: list[tuple[str, list[str], str]]) -> tuple[list[ParsedItem], list[ParseError]]:
    """sections: (heading, body lines, source)."""
    items: list[ParsedItem] = []
    errors: list[ParseError] = []
    chunks: list[tuple[str, list[str], str]] = []
    if any(line.strip() for line in preamble):
        chunks.append((title, preamble, f"{file}:section 0"))
    chunks.extend(sections)
    if not chunks:
        return [], [error(file, "未提取到文字（可能是扫描件或空文档）no text could be extracted (scanned or empty?)")]
    for heading, lines, source in chunks:
        body = "\n".join(lines).strip()
        body = re.sub(r"\n{3,}", "\n\n", body)
        item, problems = build_item("create", {"title": short_title(heading), "body": body,
                                               "category": DOCUMENT_CATEGORY}, file=file, source=source)
        errors.extend(problems)
        if item:
            item.attachments.append(file)  # every entry of a document carries the original
            items.append(item)
    return items, errors


# ---------------------------------------------------------------- DOCX


def _xml(data: bytes) -> Any:
    from defusedxml.ElementTree import fromstring  # refuses DTDs / entity expansion

    return fromstring(data)


def _styles(data: bytes | None) -> dict[str, int]:
    """styleId → heading level (0 = Title)."""
    levels: dict[str, int] = {}
    if not data:
        return levels
    root = _xml(data)
    for style in root.iter(f"{W}style"):
        style_id = style.get(f"{W}styleId") or ""
        name_el = style.find(f"{W}name")
        name = (name_el.get(f"{W}val") if name_el is not None else "") or ""
        level = _level_from_name(name)
        outline = style.find(f"{W}pPr/{W}outlineLvl")
        if level is None and outline is not None and (outline.get(f"{W}val") or "").isdigit():
            value = int(outline.get(f"{W}val") or 9)
            level = value + 1 if value < 9 else None
        if level is not None:
            levels[style_id] = level
    return levels


def _level_from_name(name: str) -> int | None:
    text = name.strip().lower()
    if text in ("title", "标题"):
        return 0
    match = re.fullmatch(r"(?:heading|标题)\s*([1-9])", text)
    return int(match.group(1)) if match else None


def _paragraph_text(p: Any) -> str:
    parts: list[str] = []
    for el in p.iter():
        if el.tag == f"{W}t" and el.text:
            parts.append(el.text)
        elif el.tag == f"{W}tab":
            parts.append("\t")
        elif el.tag in (f"{W}br", f"{W}cr"):
            parts.append("\n")
    return "".join(parts).strip()


def _blocks(body: Any, styles: dict[str, int]) -> list[tuple[int | None, str]]:
    """(heading level or None, text) in document order."""
    out: list[tuple[int | None, str]] = []
    for child in list(body):
        if child.tag == f"{W}p":
            text = _paragraph_text(child)
            if not text:
                continue
            level: int | None = None
            style = child.find(f"{W}pPr/{W}pStyle")
            if style is not None:
                style_id = style.get(f"{W}val") or ""
                level = styles.get(style_id, _level_from_name(style_id.replace("Heading", "heading ")))
            outline = child.find(f"{W}pPr/{W}outlineLvl")
            if level is None and outline is not None and (outline.get(f"{W}val") or "").isdigit():
                value = int(outline.get(f"{W}val") or 9)
                level = value + 1 if value < 9 else None
            out.append((level, text))
        elif child.tag == f"{W}tbl":
            for tr in child.iter(f"{W}tr"):
                cells = [" ".join(_paragraph_text(p) for p in tc.iter(f"{W}p")).strip() for tc in tr.findall(f"{W}tc")]
                if any(cells):
                    out.append((None, " | ".join(cells)))
        elif child.tag == f"{W}sdt":
            content = child.find(f"{W}sdtContent")
            if content is not None:
                out.extend(_blocks(content, styles))
    return out


def parse_docx(file: str, data: bytes, budget: Budget) -> tuple[list[ParsedItem], list[ParseError], list[Attachment]]:
    parts, errors = read_all(file, data, budget, depth=1, only={"word/document.xml", "word/styles.xml"})
    if errors:
        return [], errors, []
    found = {name: content for name, _, content in parts}
    if "word/document.xml" not in found:
        return [], [error(file, "不是 Word 文档（缺少 word/document.xml）not a Word .docx document")], []
    try:
        styles = _styles(found.get("word/styles.xml"))
        root = _xml(found["word/document.xml"])
    except Exception as exc:  # defusedxml / expat errors on hostile or damaged XML
        return [], [error(file, f"文档 XML 无法解析 document XML cannot be parsed ({type(exc).__name__})")], []
    body = root.find(f"{W}body")
    blocks = _blocks(body, styles) if body is not None else []
    title = next((text for level, text in blocks if level == 0), "") or stem(file)
    heading_levels = [level for level, _ in blocks if level]
    split = min(heading_levels) if heading_levels else None
    preamble: list[str] = []
    sections: list[tuple[str, list[str], str]] = []
    for level, text in blocks:
        if level == 0:
            continue
        if split is not None and level == split:
            sections.append((text, [], f"{file}:section {len(sections) + 1}"))
        elif level:
            target = sections[-1][1] if sections else preamble
            target.extend(["", "#" * (level - split + 1 if split else 2) + " " + text, ""])
        else:
            (sections[-1][1] if sections else preamble).append(text)
    items, problems = sections_to_items(file, title, preamble, sections)
    return items, problems, [Attachment(name=PurePosixPath(file).name, content=data, media_type=DOCX_TYPE, path=file)]


# ---------------------------------------------------------------- PDF

NUM = "一二三四五六七八九十百千零〇两"
PDF_HEADINGS: list[tuple[str, re.Pattern[str], bool]] = [
    ("chapter", re.compile(rf"^第[{NUM}\d]+章"), False),
    ("article", re.compile(rf"^第[{NUM}\d]+条"), False),
    ("cn_num", re.compile(rf"^[{NUM}]+[、．.]\s*\S"), True),
    ("arabic", re.compile(r"^\d{1,2}(?:[.．](?!\d)|、)\s*\S"), True),
]
PAGE_NUMBER = re.compile(r"^(?:[-—–\s]*\d+[-—–\s]*|第\s*\d+\s*页(?:\s*[/，,]?\s*共\s*\d+\s*页)?|\d+\s*/\s*\d+)$")


def _heading_kind(line: str) -> str | None:
    for kind, pattern, short in PDF_HEADINGS:
        if pattern.match(line):
            if short and (len(line) > 40 or line.endswith(("。", "；", ";", "，", ","))):
                continue
            return kind
    return None


def parse_pdf(file: str, data: bytes, max_pages: int) -> tuple[list[ParsedItem], list[ParseError], list[Attachment]]:
    head = data[:1024]
    if b"%PDF-" not in head:
        return [], [error(file, "不是 PDF 文件 not a PDF file (no %PDF- header)")], []
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            return [], [error(file, "PDF 已加密，请上传未加密的文件 the PDF is encrypted; upload an unencrypted copy")], []
        if len(reader.pages) > max_pages:
            return [], [error(file, f"PDF 页数 {len(reader.pages)} 超过上限 {max_pages} too many pages")], []
        meta_title = ""
        try:
            meta_title = str((reader.metadata or {}).get("/Title") or "").strip()
        except Exception:
            meta_title = ""
        lines: list[tuple[int, str]] = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            for raw in text.splitlines():
                line = raw.strip()
                if line and not PAGE_NUMBER.match(line):
                    lines.append((number, line))
    except Exception as exc:  # pypdf raises many kinds on damaged or hostile files
        return [], [error(file, f"PDF 无法读取 the PDF cannot be read ({type(exc).__name__}: {exc})")], []
    kinds = {_heading_kind(line) for _, line in lines} - {None}
    split = next((kind for kind, _, _ in PDF_HEADINGS if kind in kinds), None)
    preamble: list[str] = []
    sections: list[tuple[str, list[str], str]] = []
    for page, line in lines:
        if split and _heading_kind(line) == split:
            body = [line] if len(line) > MAX_TITLE else []
            sections.append((line, body, f"{file}:page {page}"))
        else:
            (sections[-1][1] if sections else preamble).append(line)
    items, problems = sections_to_items(file, meta_title or stem(file), preamble, sections)
    return items, problems, [Attachment(name=PurePosixPath(file).name, content=data, media_type=PDF_TYPE, path=file)]
