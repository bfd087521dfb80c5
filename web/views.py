"""View models: each page's data, built from the same service functions as the API (no queries here)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from api.runtime import Runtime
from kb import service as kb_service
from kb.errors import NotFound
from kb.models import Actor, Category, EntryVersion, Role
from kb.timeutil import utcnow
from retrieval import conversations
from retrieval.cards import Card, build_card
from retrieval.conversations import CardsUpdate, ConversationView
from retrieval.logs import log_search
from retrieval.search import Filters
from review_workflow import lint
from review_workflow import service as workflow
from review_workflow.machine import allowed_events
from review_workflow.models import ItemOp, PackPublic, PackState, UpdatePack

LINTED_FIELDS = lint.CONTENT_FIELDS  # title, summary, body, script_template (+ one line per fact)


# ---------------------------------------------------------------- search and cards


@dataclass
class HitView:
    entry_id: str
    version: int
    title: str
    snippet: str
    category: str
    product_type: str | None
    valid_from: datetime
    changed: bool
    related: list[dict[str, str]]


@dataclass
class SearchView:
    query: str
    category: str
    product_type: str
    hits: list[HitView] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    confidence: float | None = None
    handoff: bool = False
    took_ms: float | None = None
    searched: bool = False


def search_view(*, runtime: Runtime, session: Session, actor: Actor, query: str, category: str = "",
                product_type: str = "", top_k: int = 8) -> SearchView:
    """The agent's instant search: the API's search path, logged the same way, with change markers."""
    view = SearchView(query=query, category=category, product_type=product_type)
    if not query.strip():
        return view
    filters = Filters(categories=(Category.parse(category).value,) if category else (),
                      product_types=(product_type,) if product_type else ())
    response = runtime.searcher.search(query, top_k=top_k, filters=filters)
    log_search(session=session, actor=actor.username, role=actor.role, kind="search", response=response)
    since = utcnow() - timedelta(days=runtime.settings.notice_days)
    changed = {n.entry_id for n in kb_service.notices_since(session=session, since=since,
                                                            entry_ids=[h.entry_id for h in response.hits])}
    view.searched = True
    view.confidence, view.handoff, view.took_ms = response.confidence, response.handoff, response.took_ms
    view.terms = highlight_terms(runtime, response.normalized)
    view.hits = [HitView(h.entry_id, h.version, h.title, h.snippet, h.category, h.product_type, h.valid_from,
                         h.entry_id in changed,
                         [{"entry_id": r.entry_id, "title": r.title, "reason": r.reason} for r in h.related])
                 for h in response.hits]
    return view


def highlight_terms(runtime: Runtime, normalized: str) -> list[str]:
    """The query's words as the search analyser cut them (bigram features left out)."""
    words = [t for t in runtime.analyzer.tokens(normalized) if not t.startswith("#")]
    return [w for w in dict.fromkeys(words) if len(w) >= 2 or w.isascii()]


def card_view(*, runtime: Runtime, session: Session, entry_id: str, at: datetime | None = None) -> Card:
    """The card of the version in force, with the entry's related entries (expert links, both ways)."""
    version = kb_service.entry_as_of(session=session, entry_id=entry_id, at=at)
    if version is None:
        kb_service.get_entry(session=session, entry_id=entry_id)
        raise NotFound(f"条目当前未生效 entry {entry_id!r} is not in force")
    card = build_card(session=session, version=version, now=at, notice_days=runtime.settings.notice_days)
    associations = runtime.searcher.associations
    card.related = [{"entry_id": other, "title": associations.entries[other].title, "reason": "related"}
                    for other in associations.related_to(entry_id) if other in associations.entries][:5]
    return card


# ---------------------------------------------------------------- entries and diffs


@dataclass
class DiffRow:
    kind: str  # same | changed | added | removed | gap
    left: str | None
    right: str | None


@dataclass
class DiffView:
    from_version: int
    to_version: int
    fields: list[dict[str, Any]]
    facts: list[dict[str, Any]]
    body: list[DiffRow]

    @property
    def changed(self) -> bool:
        return bool(self.fields or self.facts or self.body)


def side_by_side(unified: list[str]) -> list[DiffRow]:
    """A unified line diff as two columns: removed lines beside the lines that replaced them."""
    rows: list[DiffRow] = []
    removed: list[str] = []
    added: list[str] = []

    def flush() -> None:
        for i in range(max(len(removed), len(added))):
            left = removed[i] if i < len(removed) else None
            right = added[i] if i < len(added) else None
            kind = "changed" if left is not None and right is not None else "removed" if right is None else "added"
            rows.append(DiffRow(kind, left, right))
        removed.clear()
        added.clear()

    for line in unified:
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            flush()
            if rows:
                rows.append(DiffRow("gap", None, None))
            continue
        if line.startswith("-"):
            removed.append(line[1:])
        elif line.startswith("+"):
            added.append(line[1:])
        else:
            flush()
            rows.append(DiffRow("same", line[1:], line[1:]))
    flush()
    return rows


def _show(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "（空）"
    if isinstance(value, datetime):
        from web.render import local_time

        return local_time(value)
    if isinstance(value, (list, tuple)):
        return "、".join(map(str, value))
    return str(value)


def diff_view(diff: kb_service.VersionDiff, *, skip_start: bool = False) -> DiffView:
    fields = [{"field": f.field, "before": _show(f.before), "after": _show(f.after)} for f in diff.fields
              if not (skip_start and f.field == "valid_from")]
    facts = [{"key": f.key, "change": f.change, "before": f.before or "（无）", "after": f.after or "（无）"}
             for f in diff.facts]
    return DiffView(diff.from_version, diff.to_version, fields, facts, side_by_side(diff.body))


@dataclass
class EntryView:
    entry_id: str
    status: str
    latest_version: int
    owner_department: str | None
    current: EntryVersion | None
    card: Card | None
    history: list[EntryVersion]
    diff: DiffView | None
    can_edit: bool


def entry_view(*, runtime: Runtime, session: Session, actor: Actor, entry_id: str, from_version: int | None,
               to_version: int | None) -> EntryView:
    """An entry: the version in force, its card, every version, and a diff between two of them."""
    entry = kb_service.get_entry(session=session, entry_id=entry_id)
    history = kb_service.history(session=session, entry_id=entry_id)
    current = kb_service.entry_as_of(session=session, entry_id=entry_id)
    card = card_view(runtime=runtime, session=session, entry_id=entry_id) if current is not None else None
    diff = None
    if len(history) >= 2:
        to_version = to_version or history[-1].number
        from_version = from_version or max(1, to_version - 1)
        if from_version == to_version:
            from_version = max(1, to_version - 1)
        diff = diff_view(kb_service.diff_versions(session=session, entry_id=entry_id, from_version=from_version,
                                                  to_version=to_version))
    return EntryView(entry.id, entry.status, entry.latest_version, entry.owner_department, current, card,
                     list(reversed(history)), diff, actor.has(Role.EXPERT, Role.ADMIN) and entry.status == "active")


# ---------------------------------------------------------------- packs


@dataclass
class LintedField:
    name: str
    text: str
    findings: list[dict[str, Any]]


@dataclass
class ItemView:
    position: int
    op: str
    entry_id: str | None
    base_version: int | None
    result_version: int | None
    title: str
    data: dict[str, Any]
    linted: list[LintedField]
    findings: list[dict[str, Any]]
    diff: DiffView | None

    @property
    def blocking(self) -> int:
        return sum(1 for f in self.findings if f.get("severity") == "block")


@dataclass
class PackView:
    pack: PackPublic
    items: list[ItemView]
    is_owner: bool
    can_review: bool
    four_eyes: bool
    owner_actions: list[str]
    can_edit_items: bool
    can_publish_now: bool

    @property
    def blocking(self) -> int:
        return sum(i.blocking for i in self.items)

    @property
    def findings(self) -> int:
        return sum(len(i.findings) for i in self.items)


def _linted(data: dict[str, Any], findings: list[dict[str, Any]]) -> list[LintedField]:
    segments = [(name, text) for name, text in lint.content_segments(data) if text and name not in ("category",)]
    return [LintedField(name, text, [f for f in findings if f.get("field") == name]) for name, text in segments]


def pack_view(*, session: Session, actor: Actor, pack_id: str, now: datetime | None = None) -> PackView:
    """A pack with per-item diffs against the base version, lint findings at their spans, and what this
    user may do with it now (the services enforce the same rules)."""
    pack = workflow.get_pack(session=session, pack_id=pack_id)
    public = workflow.to_public(session=session, pack=pack, now=now)
    items = []
    for item in workflow.pack_items(session=session, pack_id=pack.id):
        data = dict(item.data)
        diff = workflow.item_diff(session=session, item=item) if item.op == ItemOp.UPDATE else None
        title = data.get("title") or ""
        if item.op == ItemOp.RETIRE and item.entry_id:
            current = kb_service.entry_as_of(session=session, entry_id=item.entry_id)
            title = current.title if current else item.entry_id
        items.append(ItemView(item.position, item.op, item.entry_id, item.base_version, item.result_version, title,
                              data, _linted(data, item.findings) if item.op != ItemOp.RETIRE else [], item.findings,
                              diff_view(diff, skip_start=not data.get("valid_from")) if diff else None))
    is_owner = pack.submitter == actor.username
    reviewer = actor.has(Role.REVIEWER, Role.ADMIN)
    submitted = pack.state == PackState.SUBMITTED
    owner_actions = [e for e in allowed_events(pack.state) if e in ("submit", "withdraw", "revise")] if is_owner else []
    return PackView(public, items, is_owner, reviewer and submitted and not is_owner, reviewer and submitted and is_owner,
                    sorted(owner_actions, key=("submit", "revise", "withdraw").index),
                    is_owner and pack.state == PackState.DRAFT,
                    actor.has(Role.ADMIN) and pack.state == PackState.SCHEDULED)


@dataclass
class PackRow:
    pack: UpdatePack
    overdue: bool
    items: int
    findings: int
    blocking: int


def pack_rows(*, session: Session, packs: list[UpdatePack], now: datetime | None = None) -> list[PackRow]:
    now = now or utcnow()
    rows = []
    for pack in packs:
        items = workflow.pack_items(session=session, pack_id=pack.id)
        findings = [f for i in items for f in i.findings]
        rows.append(PackRow(pack, workflow.is_overdue(pack, now), len(items), len(findings),
                            sum(1 for f in findings if f.get("severity") == "block")))
    return rows


def prefill(*, session: Session, entry_id: str) -> dict[str, Any]:
    """The form values to edit an entry: its latest version (the base the edit must name)."""
    entry = kb_service.get_entry(session=session, entry_id=entry_id)
    version = kb_service.get_version(session=session, entry_id=entry_id, number=entry.latest_version)
    facts = "\n".join(f"{k}={v.get('value', '')}{(' ' + v['unit']) if v.get('unit') else ''}"
                      for k, v in (version.facts or {}).items())
    return {
        "entry_id": entry.id, "base_version": entry.latest_version, "title": version.title, "category": version.category,
        "product_type": version.product_type or "", "risk_level": version.risk_level or "", "summary": version.summary,
        "body": version.body, "facts": facts, "script_template": version.script_template,
        "tags": "、".join(version.tags), "synonyms": "、".join(version.synonyms), "related": "、".join(version.related),
        "valid_from": "", "valid_to": "", "review_by": version.review_by.isoformat() if version.review_by else "",
        "product_code": entry.product_code or "", "owner_department": entry.owner_department or "",
        "status": entry.status,
    }


# ---------------------------------------------------------------- live conversation panel


@dataclass
class ConversationPanel:
    view: ConversationView
    live: CardsUpdate


def conversation_panel(*, runtime: Runtime, session: Session, conversation_id: str) -> ConversationPanel:
    """The conversation with its transcript, the customer's earlier conversations and the live cards."""
    view = conversations.conversation_view(session=session, conversation_id=conversation_id)
    live = conversations.current_cards(session=session, conversation_id=conversation_id,
                                       notice_days=runtime.settings.notice_days)
    return ConversationPanel(view, live)


def live_cards(*, runtime: Runtime, conversation_id: str) -> CardsUpdate:
    """The live cards now (for the panel's event stream, which has no request session)."""
    with Session(runtime.engine) as session:
        return conversations.current_cards(session=session, conversation_id=conversation_id,
                                           notice_days=runtime.settings.notice_days)
