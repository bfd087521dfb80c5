"""Markdown with YAML front matter, one entry per file (the demo knowledge base's format)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import frontmatter
import yaml

from kb.errors import ValidationFailed



def parse_entry_markdown(text: str, *, source: str) -> dict[str, Any]:
    """Parse one entry file: front matter holds the fields, the Markdown after it is the body."""
    text = text.lstrip("\ufeff")
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ValidationFailed(
            f"{where}: 前置元数据 YAML 无法解析 front matter is not valid YAML: {getattr(exc, 'problem', exc)}",
            errors=[{"field": "front_matter", "message": str(exc), "file": source, "line": mark.line + 1 if mark else None}],
        ) from None
    if not post.metadata:
        raise ValidationFailed(
            f"{source}: 缺少前置元数据 missing YAML front matter (--- … ---)",
            errors=[{"field": "front_matter", "message": "missing", "file": source}],
        )
    data = dict(post.metadata)
    data["body"] = post.content.strip()
    return data


def read_entry_file(path: Path) -> dict[str, Any]:
    return parse_entry_markdown(path.read_text(encoding="utf-8"), source=path.name)
