"""Entries and their immutable versions: create, add a version, retire, history, diff, as-of."""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from kb import audit
from kb.errors import Conflict, NotFound, ValidationFailed
from kb.models import (
    Category,
    ChangeNotice,
    OutboxEvent,
    Entry,
    EntryCreate,
    EntryPublic,
    EntryStatus,
    EntryVersion,
    EntryVersionPublic,
    VersionContent,
)
from kb.timeutil import to_utc, utcnow

# Fields of a version that make up its content (and so its content hash and its diff).
CONTENT_FIELDS = (
    "title", "body", "summary", "category", "product_type", "risk_level", "facts", "script_template",
    "tags", "synonyms", "related", "valid_from", "valid_to", "review_by",
)


# ---------------------------------------------------------------- validation


def _validate(model: type[VersionContent], data: Mapping[str, Any] | VersionContent) -> Any:
    """Validate input into `model`, turning pydantic's errors into one ValidationFailed naming the fields."""
    if isinstance(data, model):
        return data
    raw = data.model_dump() if isinstance(data, VersionContent) else dict(data)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            message = err["msg"].removeprefix("Value error, ")
            name = loc[0] if loc else message.split(":", 1)[0]
            errors.append({"field": name, "message": message})
        names = ", ".join(dict.fromkeys(e["field"] for e in errors))
        raise ValidationFailed(f"输入无效 invalid input: {names}", errors=errors) from None


def version_hash(content: Mapping[str, Any]) -> str:
    """Content hash of a version's fields (not of who wrote it or when)."""
    return audit.content_hash({name: content.get(name) for name in CONTENT_FIELDS})


def version_fields(content: VersionContent, *, valid_from: datetime) -> dict[str, Any]:
    """The stored form of validated content (the fields an EntryVersion row holds)."""
    return {
        "title": content.title,
        "body": content.body,
        "summary": content.summary,
        "category": content.category.value,
        "product_type": content.product_type,
        "risk_level": content.risk_level,
        "facts": content.fact_values(),
        "script_template": content.script_template,
        "tags": content.tags,
        "synonyms": content.synonyms,
        "related": content.related,
        "valid_from": valid_from,
        "valid_to": content.valid_to,
        "review_by": content.review_by,
    }


def _version_content(version: EntryVersion) -> dict[str, Any]:
    return {name: getattr(version, name) for name in CONTENT_FIELDS}


# ---------------------------------------------------------------- reads


def get_entry(*, session: Session, entry_id: str) -> Entry:
    entry = session.get(Entry, entry_id)
    if entry is None:
        raise NotFound(f"条目不存在 entry {entry_id!r} not found", details={"entry_id": entry_id})
    return entry


def get_version(*, session: Session, entry_id: str, number: int) -> EntryVersion:
    """One version of an entry by its number."""
    version = session.exec(
        select(EntryVersion).where(EntryVersion.entry_id == entry_id, EntryVersion.number == number)
    ).first()
    if version is None:
        get_entry(session=session, entry_id=entry_id)
        raise NotFound(
            f"版本不存在 entry {entry_id!r} has no version {number}",
            details={"entry_id": entry_id, "version": number},
        )
    return version


def history(*, session: Session, entry_id: str) -> list[EntryVersion]:
    """Every version of an entry, oldest first."""
    get_entry(session=session, entry_id=entry_id)
    return list(
        session.exec(
            select(EntryVersion).where(EntryVersion.entry_id == entry_id).order_by(col(EntryVersion.number))
        ).all()
    )


def _in_force(at: datetime):  # type: ignore[no-untyped-def]
    return (col(EntryVersion.valid_from) <= at) & or_(
        col(EntryVersion.valid_to).is_(None), col(EntryVersion.valid_to) > at
    )


def current_versions(*, session: Session, at: datetime | None = None) -> dict[str, EntryVersion]:
    """The version in force for every entry at time `at` (default now), keyed by entry id.

    In force = the highest-numbered version that has started by `at`, provided it has not expired
    and the entry was not retired by then. A newer version scheduled for later does not hide the
    one in force today.
    """
    at = to_utc(at) or utcnow()
    started = (
        select(EntryVersion.entry_id, func.max(EntryVersion.number).label("number"))
        .where(col(EntryVersion.valid_from) <= at)
        .group_by(col(EntryVersion.entry_id))
        .subquery()
    )
    rows = session.exec(
        select(EntryVersion)
        .join(started, (EntryVersion.entry_id == started.c.entry_id) & (EntryVersion.number == started.c.number))
        .join(Entry, col(Entry.id) == EntryVersion.entry_id)
        .where(or_(col(EntryVersion.valid_to).is_(None), col(EntryVersion.valid_to) > at))
        .where(or_(col(Entry.retired_at).is_(None), col(Entry.retired_at) > at))
    ).all()
    return {version.entry_id: version for version in rows}


def entry_as_of(*, session: Session, entry_id: str, at: datetime | None = None) -> EntryVersion | None:
    """The version of one entry in force at `at` (default now), or None if none was."""
    entry = get_entry(session=session, entry_id=entry_id)
    at = to_utc(at) or utcnow()
    if entry.retired_at is not None and entry.retired_at <= at:
        return None
    version = session.exec(
        select(EntryVersion)
        .where(EntryVersion.entry_id == entry_id, col(EntryVersion.valid_from) <= at)
        .order_by(col(EntryVersion.number).desc())
        .limit(1)
    ).first()
    if version is None or (version.valid_to is not None and version.valid_to <= at):
        return None
    return version


def to_public(entry: Entry, current: EntryVersion | None) -> EntryPublic:
    return EntryPublic(
        id=entry.id,
        category=entry.category,
        category_label=Category(entry.category).label,
        product_code=entry.product_code,
        owner_department=entry.owner_department,
        status=entry.status,
        latest_version=entry.latest_version,
        current=EntryVersionPublic.model_validate(current, from_attributes=True) if current else None,
    )


def list_entries(
    *,
    session: Session,
    category: str | None = None,
    product_type: str | None = None,
    q: str | None = None,
    at: datetime | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[EntryPublic], int]:
    """Entries in force at `at` (default now), filtered, ordered by id; returns (page, total)."""
    wanted = Category.parse(category).value if category else None
    current = current_versions(session=session, at=at)
    entries = {e.id: e for e in session.exec(select(Entry).where(col(Entry.id).in_(list(current)))).all()} if current else {}
    needle = q.strip().lower() if q and q.strip() else None
    rows = []
    for entry_id in sorted(current):
        version = current[entry_id]
        if wanted and version.category != wanted:
            continue
        if product_type and version.product_type != product_type:
            continue
        if needle and needle not in f"{entry_id} {version.title} {version.summary}".lower():
            continue
        rows.append(to_public(entries[entry_id], version))
    page = rows[offset:] if limit is None else rows[offset : offset + limit]
    return page, len(rows)


# ---------------------------------------------------------------- writes


def create_entry(
    *,
    session: Session,
    data: Mapping[str, Any] | EntryCreate,
    actor: str,
    pack_id: str | None = None,
    now: datetime | None = None,
) -> EntryVersion:
    """Create an entry with its version 1; the id is generated when not given."""
    content: EntryCreate = _validate(EntryCreate, data)
    now = now or utcnow()
    entry_id = content.id or f"KB-{utcnow():%Y%m%d}-{audit.content_hash([actor, now.isoformat(), content.title])[:6].upper()}"
    if session.get(Entry, entry_id) is not None:
        raise Conflict(f"条目已存在 entry {entry_id!r} already exists", details={"entry_id": entry_id})
    entry = Entry(
        id=entry_id,
        category=content.category.value,
        product_code=content.product_code,
        owner_department=content.owner_department,
        latest_version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(entry)
    version = _new_version(entry_id=entry_id, number=1, content=content, actor=actor, pack_id=pack_id, now=now)
    session.add(version)
    session.flush()
    audit.append(
        session=session, actor=actor, action="entry.create", object_type="entry", object_id=entry_id,
        after_hash=version.content_hash, detail={"version": 1, "pack_id": pack_id, "title": version.title},
    )
    _enqueue(session, entry_id, "create", pack_id)
    return version


def add_version(
    *,
    session: Session,
    entry_id: str,
    base_version: int,
    data: Mapping[str, Any] | VersionContent,
    actor: str,
    pack_id: str | None = None,
    now: datetime | None = None,
) -> EntryVersion:
    """Write a new version on top of `base_version`; a stale base raises Conflict with both versions.

    Content identical to the latest version writes nothing and returns the latest version.
    """
    content: VersionContent = _validate(VersionContent, data)
    entry = get_entry(session=session, entry_id=entry_id)
    latest = get_version(session=session, entry_id=entry_id, number=entry.latest_version)
    if base_version != entry.latest_version:
        _raise_stale(entry_id=entry_id, base_version=base_version, latest=latest, attempted=content)
    now = now or utcnow()
    version = _new_version(
        entry_id=entry_id, number=base_version + 1, content=content, actor=actor, pack_id=pack_id, now=now
    )
    if version.content_hash == latest.content_hash:
        return latest
    # Compare-and-set on the lock token: of two writers on the same base, exactly one moves it.
    moved = session.execute(
        update(Entry)
        .where(col(Entry.id) == entry_id, col(Entry.latest_version) == base_version)
        .values(latest_version=base_version + 1, category=content.category.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(entry)  # another writer committed first; show what it wrote
        latest = get_version(session=session, entry_id=entry_id, number=entry.latest_version)
        _raise_stale(entry_id=entry_id, base_version=base_version, latest=latest, attempted=content)
    session.add(version)
    session.flush()
    session.refresh(entry)
    audit.append(
        session=session, actor=actor, action="entry.version", object_type="entry", object_id=entry_id,
        before_hash=latest.content_hash, after_hash=version.content_hash,
        detail={"version": version.number, "base_version": base_version, "pack_id": pack_id},
    )
    _notice_update(session, latest, version, pack_id)
    _enqueue(session, entry_id, "version", pack_id)
    return version


def retire_entry(
    *,
    session: Session,
    entry_id: str,
    base_version: int,
    actor: str,
    reason: str = "",
    effective_at: datetime | None = None,
    pack_id: str | None = None,
    now: datetime | None = None,
) -> Entry:
    """Retire an entry (now or at `effective_at`); its versions stay for history and as-of queries."""
    entry = get_entry(session=session, entry_id=entry_id)
    if entry.status == EntryStatus.RETIRED:
        raise Conflict(f"条目已下线 entry {entry_id!r} is already retired", details={"entry_id": entry_id})
    latest = get_version(session=session, entry_id=entry_id, number=entry.latest_version)
    if base_version != entry.latest_version:
        _raise_stale(entry_id=entry_id, base_version=base_version, latest=latest, attempted=None)
    now = now or utcnow()
    effective = to_utc(effective_at) or now
    moved = session.execute(
        update(Entry)
        .where(col(Entry.id) == entry_id, col(Entry.latest_version) == base_version, col(Entry.status) == EntryStatus.ACTIVE)
        .values(status=EntryStatus.RETIRED, retired_at=effective, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"条目已被他人修改 entry {entry_id!r} changed meanwhile", details={"entry_id": entry_id})
    session.refresh(entry)
    audit.append(
        session=session, actor=actor, action="entry.retire", object_type="entry", object_id=entry_id,
        before_hash=latest.content_hash,
        detail={"version": latest.number, "reason": reason, "effective_at": effective.isoformat(), "pack_id": pack_id},
    )
    session.add(ChangeNotice(
        entry_id=entry_id, title=latest.title, kind="retire", version=latest.number, from_version=latest.number,
        effective_at=effective, changes=[], summary=f"已下线：{reason}" if reason else "已下线", pack_id=pack_id,
    ))
    _enqueue(session, entry_id, "retire", pack_id)
    return entry


def _enqueue(session: Session, entry_id: str, reason: str, pack_id: str | None) -> None:
    """Tell the index worker, in this same transaction, that the entry changed."""
    session.add(OutboxEvent(entry_id=entry_id, reason=reason, pack_id=pack_id))
    session.info["outbox"] = True  # whoever commits may wake the worker at once


FIELD_LABELS = {
    "title": "标题", "summary": "摘要", "category": "分类", "product_type": "产品类型", "risk_level": "风险等级",
    "script_template": "话术模板", "tags": "标签", "synonyms": "同义词", "related": "关联条目",
    "valid_from": "生效时间", "valid_to": "失效时间", "review_by": "复核日期",
}


def change_summary(fields: list[FieldChange], facts: list[FactChange], body: list[str]) -> tuple[list[dict[str, Any]], str]:
    """Changes as rows and as one Chinese line: 「起购金额：1万元 → 1元；正文已更新」."""
    rows: list[dict[str, Any]] = []
    for f in facts:
        rows.append({"key": f.key, "before": f.before, "after": f.after, "change": f.change})
    for c in fields:
        if c.field in ("valid_from", "review_by"):
            continue
        rows.append({"key": FIELD_LABELS.get(c.field, c.field), "before": _plain(c.before), "after": _plain(c.after), "change": "changed"})
    if body:
        rows.append({"key": "正文", "before": None, "after": None, "change": "changed"})
    parts = []
    for row in rows:
        if row["key"] == "正文":
            parts.append("正文已更新")
        elif row["change"] == "added":
            parts.append(f"{row['key']}：新增 {row['after']}")
        elif row["change"] == "removed":
            parts.append(f"{row['key']}：删除（原为 {row['before']}）")
        else:
            parts.append(f"{row['key']}：{row['before'] or '空'} → {row['after'] or '空'}")
    return rows, "；".join(parts)


def _plain(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return "、".join(map(str, value))
    return str(value)


def _notice_update(session: Session, old: EntryVersion, new: EntryVersion, pack_id: str | None) -> None:
    fields, facts, body = diff_contents(_version_content(old), _version_content(new))
    rows, summary = change_summary(fields, facts, body)
    session.add(ChangeNotice(
        entry_id=new.entry_id, title=new.title, kind="update", version=new.number, from_version=old.number,
        effective_at=new.valid_from, changes=rows, summary=summary or "内容已更新", pack_id=pack_id,
    ))


def notices_since(*, session: Session, since: datetime, until: datetime | None = None,
                  entry_ids: Iterable[str] | None = None) -> list[ChangeNotice]:
    """Change notices that took effect in (since, until] (until defaults to now), newest first."""
    until = until or utcnow()
    query = select(ChangeNotice).where(col(ChangeNotice.effective_at) > since, col(ChangeNotice.effective_at) <= until)
    if entry_ids is not None:
        query = query.where(col(ChangeNotice.entry_id).in_(list(entry_ids)))
    return list(session.exec(query.order_by(col(ChangeNotice.effective_at).desc(), col(ChangeNotice.id).desc())).all())


def _new_version(
    *, entry_id: str, number: int, content: VersionContent, actor: str, pack_id: str | None, now: datetime
) -> EntryVersion:
    values = version_fields(content, valid_from=content.valid_from or now)
    hash_input = dict(values)
    # A version without an explicit start inherits "now"; it must not make identical content look new.
    if content.valid_from is None:
        hash_input["valid_from"] = None
    return EntryVersion(
        entry_id=entry_id, number=number, content_hash=version_hash(hash_input), author=actor,
        pack_id=pack_id, created_at=now, **values,
    )


def _raise_stale(*, entry_id: str, base_version: int, latest: EntryVersion, attempted: VersionContent | None) -> None:
    raise Conflict(
        f"版本冲突：基于第 {base_version} 版修改，但当前已是第 {latest.number} 版 "
        f"stale base version {base_version}, entry {entry_id!r} is at version {latest.number}",
        details={
            "entry_id": entry_id,
            "base_version": base_version,
            "current": EntryVersionPublic.model_validate(latest, from_attributes=True).model_dump(mode="json"),
            "attempted": attempted.model_dump(mode="json") if attempted else None,
        },
    )


# ---------------------------------------------------------------- diff


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class FactChange:
    key: str
    change: str  # added | removed | changed
    before: str | None
    after: str | None


@dataclass(frozen=True)
class VersionDiff:
    entry_id: str
    from_version: int
    to_version: int
    fields: list[FieldChange] = field(default_factory=list)
    facts: list[FactChange] = field(default_factory=list)
    body: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.fields or self.facts or self.body)


def _fact_text(fact: Mapping[str, Any] | None) -> str | None:
    if fact is None:
        return None
    unit = fact.get("unit") or ""
    return f"{fact.get('value', '')}{unit}"


def diff_contents(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[list[FieldChange], list[FactChange], list[str]]:
    """Field-level diff of two version contents: changed fields, fact changes, body line diff."""
    fields = [
        FieldChange(name, before.get(name), after.get(name))
        for name in CONTENT_FIELDS
        if name not in ("facts", "body") and before.get(name) != after.get(name)
    ]
    old_facts, new_facts = before.get("facts") or {}, after.get("facts") or {}
    facts = []
    for key in list(old_facts) + [k for k in new_facts if k not in old_facts]:
        old, new = old_facts.get(key), new_facts.get(key)
        if old == new:
            continue
        change = "added" if old is None else "removed" if new is None else "changed"
        facts.append(FactChange(key, change, _fact_text(old), _fact_text(new)))
    body = list(
        difflib.unified_diff(
            (before.get("body") or "").splitlines(), (after.get("body") or "").splitlines(),
            fromfile="before", tofile="after", lineterm="", n=2,
        )
    )
    return fields, facts, body


def diff_versions(*, session: Session, entry_id: str, from_version: int, to_version: int) -> VersionDiff:
    """What changed between two versions of an entry (either order)."""
    old = get_version(session=session, entry_id=entry_id, number=from_version)
    new = get_version(session=session, entry_id=entry_id, number=to_version)
    fields, facts, body = diff_contents(_version_content(old), _version_content(new))
    return VersionDiff(entry_id, from_version, to_version, fields, facts, body)


# ---------------------------------------------------------------- validity windows


@dataclass(frozen=True)
class Window:
    """When one version is in force: [start, end); end None = open; start == end = never."""

    version: EntryVersion
    start: datetime
    end: datetime | None


def effective_windows(versions: list[EntryVersion], *, retired_at: datetime | None) -> list[Window]:
    """The in-force window of every version of one entry, by the rule of `current_versions`.

    A version ends at its own valid_to, at the earliest start of any higher-numbered version, or at
    retirement — whichever comes first. The index stores these windows so that "now" and "as of T"
    are one payload filter.
    """
    ordered = sorted(versions, key=lambda v: v.number)
    windows = []
    later_start: datetime | None = None
    for version in reversed(ordered):
        ends = [t for t in (version.valid_to, later_start, retired_at) if t is not None]
        end = min(ends) if ends else None
        if end is not None and end < version.valid_from:
            end = version.valid_from
        windows.append(Window(version, version.valid_from, end))
        later_start = version.valid_from if later_start is None else min(later_start, version.valid_from)
    return list(reversed(windows))


def all_windows(*, session: Session, entry_ids: Iterable[str] | None = None) -> list[Window]:
    """Windows of every version of every entry, or of the given entries (for indexing and drift checks)."""
    entries = select(Entry)
    versions = select(EntryVersion).order_by(col(EntryVersion.entry_id), col(EntryVersion.number))
    if entry_ids is not None:
        wanted = list(entry_ids)
        entries = entries.where(col(Entry.id).in_(wanted))
        versions = versions.where(col(EntryVersion.entry_id).in_(wanted))
    retired = {e.id: e.retired_at for e in session.exec(entries).all()}
    by_entry: dict[str, list[EntryVersion]] = {}
    for version in session.exec(versions).all():
        by_entry.setdefault(version.entry_id, []).append(version)
    windows: list[Window] = []
    for entry_id, versions in by_entry.items():
        windows.extend(effective_windows(versions, retired_at=retired.get(entry_id)))
    return windows


def reschedule_retirement(*, session: Session, entry_id: str, effective_at: datetime, actor: str) -> Entry:
    """Move a retirement that has not yet taken effect to `effective_at` (e.g. an admin's "publish now")."""
    entry = get_entry(session=session, entry_id=entry_id)
    if entry.status != EntryStatus.RETIRED or entry.retired_at is None:
        raise Conflict(f"条目未安排下线 entry {entry_id!r} has no retirement to move", details={"entry_id": entry_id})
    before = entry.retired_at
    entry.retired_at, entry.updated_at = to_utc(effective_at), utcnow()
    session.add(entry)
    notice = session.exec(select(ChangeNotice).where(ChangeNotice.entry_id == entry_id, ChangeNotice.kind == "retire")
                          .order_by(col(ChangeNotice.id).desc())).first()
    if notice is not None:
        notice.effective_at = entry.retired_at
        session.add(notice)
    audit.append(session=session, actor=actor, action="entry.retire_reschedule", object_type="entry", object_id=entry_id,
                 detail={"from": before.isoformat(), "to": entry.retired_at.isoformat() if entry.retired_at else None})
    _enqueue(session, entry_id, "retire", None)
    return entry
