"""Load the demo knowledge base and demo users, once: a second run finds them and writes nothing."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, select

from ingestion.parsers.markdown import read_entry_file
from kb import service, users
from kb.demo import DEMO_ENTRIES, DEMO_PASSWORD, DEMO_USERS
from kb.models import Entry, User

DEMO_ACTOR = "demo-loader"


@dataclass(frozen=True)
class DemoReport:
    entries_created: int
    entries_present: int
    users_created: int


def load_demo(*, session: Session, entries_dir: Path = DEMO_ENTRIES) -> DemoReport:
    """Create missing demo entries (published as of their valid_from) and the demo accounts."""
    existing = set(session.exec(select(Entry.id)).all())
    created = present = 0
    for path in sorted(entries_dir.glob("*.md")):
        data = read_entry_file(path)
        if data.get("id") in existing:
            present += 1
            continue
        service.create_entry(session=session, data=data, actor=DEMO_ACTOR)
        created += 1
    known = set(session.exec(select(User.username)).all())
    new_users = 0
    for username, (role, department, display) in DEMO_USERS.items():
        if username not in known:
            users.create_user(session=session, username=username, password=DEMO_PASSWORD, role=role,
                              department=department, display_name=display, actor=DEMO_ACTOR)
            new_users += 1
    return DemoReport(created, present, new_users)


CORPUS_FIELDS = ("summary", "synonyms", "tags", "facts", "product_type", "risk_level", "script_template", "related")


def write_demo_corpus(out: Path, *, entries_dir: Path = DEMO_ENTRIES) -> int:
    """The demo entries as an evaluation corpus (the `zhiku eval` JSONL format, every indexed field); returns lines."""
    lines = 0
    with out.open("w", encoding="utf-8") as handle:
        for path in sorted(entries_dir.glob("*.md")):
            data = read_entry_file(path)
            row = {"id": data["id"], "title": data["title"], "category": data["category"], "text": data["body"]}
            row.update({k: data[k] for k in CORPUS_FIELDS if data.get(k)})
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            lines += 1
    return lines
