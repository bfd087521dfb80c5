"""The Jinja2 environment (autoescape always on), safe Markdown, highlighting and lint marks, and the
one `render` every page goes through."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import nh3
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from kb.audit import canonical_json
from kb.models import CATEGORY_LABELS, Category
from kb.timeutil import to_local
from retrieval.cards import CHANGED_MESSAGE
from web import messages
from web.security import csrf_token_for, set_login_cookie

TEMPLATES = Path(__file__).parent / "templates"

# What a rendered Markdown body may contain; everything else (scripts, handlers, styles, iframes) is removed.
ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto", "tel"}

NAV: dict[str, list[tuple[str, str]]] = {
    "agent": [("/agent", "坐席工作台"), ("/agent#conversation-panel", "对话面板")],
    "expert": [("/expert/packs", "我的更新包"), ("/expert/packs/new", "新建更新包"), ("/expert/upload", "上传文件"),
               ("/agent", "知识检索")],
    "reviewer": [("/review", "审核队列"), ("/admin/audit", "审计日志"), ("/agent", "知识检索")],
    "admin": [("/admin", "仪表盘"), ("/review", "审核队列"), ("/expert/packs", "更新包"), ("/admin/users", "用户与部门"),
              ("/admin/keys", "API 密钥"), ("/admin/audit", "审计日志"), ("/agent", "知识检索")],
}
HOME = {"agent": "/agent", "expert": "/expert/packs", "reviewer": "/review", "admin": "/admin"}


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # html=False: raw HTML in a body is shown as text; markdown-it also refuses javascript: links.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")


def render_markdown(text: str | None) -> Markup:
    """Markdown → HTML, then sanitised by nh3 (allow-list of tags, attributes and URL schemes)."""
    html = _markdown().render(text or "")
    clean = nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
                      link_rel="noopener noreferrer nofollow")
    return Markup(clean)  # noqa: S704 - sanitised just above


def highlight(text: str | None, terms: Iterable[str]) -> Markup:
    """Escape `text` and wrap each occurrence of a query term in <mark>."""
    text = text or ""
    words = sorted({t for t in terms if t and t.strip()}, key=len, reverse=True)
    if not words:
        return escape(text)
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(escape(text[last:match.start()]))
        out.append(Markup("<mark>") + escape(match.group(0)) + Markup("</mark>"))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def mark_spans(text: str | None, spans: Sequence[dict[str, Any]]) -> Markup:
    """Escape `text` and mark lint findings at their character offsets (overlaps: the first wins)."""
    text = text or ""
    out, last = [], 0
    for span in sorted(spans, key=lambda s: (int(s.get("start", 0)), -int(s.get("end", 0)))):
        start, end = max(int(span.get("start", 0)), last), min(int(span.get("end", 0)), len(text))
        if end <= start:
            continue
        severity = span.get("severity", "warn")
        label = messages.SEVERITY_LABELS.get(severity, severity)
        out.append(escape(text[last:start]))
        out.append(Markup('<mark class="lint lint-{}" title="{}">').format(severity, f"{label}：{span.get('message', '')}")
                   + escape(text[start:end]) + Markup("</mark>"))
        last = end
    out.append(escape(text[last:]))
    return Markup("").join(out)


def local_time(value: datetime | date | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return f"{to_local(value):{fmt}}"
    return value.isoformat()


def category_label(value: str | None) -> str:
    if not value:
        return "—"
    try:
        return CATEGORY_LABELS[Category(value)]
    except ValueError:
        return value


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(markdown=render_markdown, highlight=highlight, mark_spans=mark_spans, local=local_time,
                       category=category_label,
                       product_type=lambda v: messages.PRODUCT_TYPE_LABELS.get(v or "", v or "—"),
                       state=lambda v: messages.STATE_LABELS.get(v, v), op=lambda v: messages.OP_LABELS.get(v, v),
                       role=lambda v: messages.ROLE_LABELS.get(v, v), field=lambda v: _field_label(v),
                       severity=lambda v: messages.SEVERITY_LABELS.get(v, v), compact_json=canonical_json,
                       filesize=messages.file_size)
    env.globals.update(msg=messages, changed_message=CHANGED_MESSAGE, categories=CATEGORY_LABELS, product_types=messages.PRODUCT_TYPE_LABELS,
                       risk_levels=("R1", "R2", "R3", "R4", "R5"))
    return env


def _field_label(name: str | None) -> str:
    if not name:
        return "—"
    if name.startswith("facts."):
        return f"关键事实·{name.removeprefix('facts.')}"
    return messages.FIELD_LABELS.get(name, name)


def render_fragment(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def render_fragment(request: Request, template: str, context: dict[str, Any] | None = None) -> str:
    """The HTML of a template with the page context (user, navigation, CSRF token), as a string."""
    user = getattr(request.state, "user", None)
    flash_key = request.query_params.get("msg")
    page = {
        "request": request,
        "user": user,
        "nav": NAV.get(user.role, []) if user else [],
        "csrf_token": user.csrf if user else csrf_token_for(request),
        "flash": messages.FLASHES.get(flash_key or ""),
        "path": request.url.path,
        **(context or {}),
    }
    return environment().get_template(template).render(**page)


def render(request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render a page or partial with the signed-in user, navigation and CSRF token in its context."""
    user = getattr(request.state, "user", None)
    html = render_fragment(request, template, context)
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    if user is None:
        set_login_cookie(response, request)
    response.headers["Cache-Control"] = "no-store"
    return response
