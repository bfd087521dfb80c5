"""The `zhiku` command line as an operator uses it, on a fresh data directory."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from api.cli import app
from kb.db import make_engine

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ZHIKU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ZHIKU_DATABASE_URL", raising=False)
    return tmp_path / "data"


def zhiku(*args: str):
    result = runner.invoke(app, list(args))
    return result


def test_every_command_has_help():
    for args in (["--help"], ["db", "upgrade", "--help"], ["demo", "load", "--help"], ["users", "create", "--help"],
                 ["entries", "list", "--help"], ["audit", "verify", "--help"], ["serve", "--help"],
                 ["attachments", "sweep", "--help"]):
        assert zhiku(*args).exit_code == 0, args


def test_commands_on_an_uninitialised_database_name_the_fix(data_dir):
    result = zhiku("entries", "list")
    assert result.exit_code != 0
    assert "zhiku db upgrade" in str(result.exception)


def test_demo_load_without_a_model_names_the_fix(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("ZHIKU_EMBED_MODEL", str(tmp_path / "no-model-here"))
    zhiku("db", "upgrade")
    result = zhiku("demo", "load")
    assert result.exit_code != 0
    assert "zhiku models prepare" in str(result.exception)


@pytest.mark.slow
def test_fresh_install_flow_is_idempotent(data_dir, model_path, monkeypatch):
    from ingestion.onnx_export import quantize_int8

    quantize_int8(model_path)  # made by `zhiku models prepare` under make test
    monkeypatch.setenv("ZHIKU_EMBED_MODEL", str(model_path))
    assert zhiku("db", "upgrade").exit_code == 0
    assert zhiku("db", "upgrade").exit_code == 0
    first = zhiku("demo", "load")
    assert first.exit_code == 0, first.output
    assert "0 already present" in first.output and "5 demo accounts created" in first.output
    second = zhiku("demo", "load")
    assert "0 created" in second.output and "0 demo accounts created" in second.output

    listed = zhiku("entries", "list", "--json")
    entries = json.loads(listed.stdout.strip().splitlines()[-1])
    assert len(entries) >= 150
    assert {e["category"] for e in entries} == {"product", "process", "compliance", "faq"}
    faqs = json.loads(zhiku("entries", "list", "--category", "常见问题", "--json").stdout.strip().splitlines()[-1])
    assert faqs and all(e["category"] == "faq" for e in faqs)

    verified = zhiku("audit", "verify")
    assert verified.exit_code == 0 and verified.output.startswith("OK")

    checked = zhiku("reindex", "--check")
    fp32 = re.search(r"vectors of (multilingual-e5-small@[0-9a-f]{12})\)", checked.output)  # folder@fingerprint
    assert checked.exit_code == 0 and fp32, checked.output
    # the index was built by the fp32 encoder (the default); another encoder is refused until `zhiku reindex`
    monkeypatch.setenv("ZHIKU_ENCODER", "int8")
    drift = zhiku("reindex", "--check")
    assert drift.exit_code == 1 and f"holds vectors of {fp32[1]}, not {fp32[1]}+int8" in drift.output, drift.output
    refused = zhiku("serve", "--port", "0")
    assert refused.exit_code != 0 and "zhiku reindex" in str(refused.exception)
    monkeypatch.delenv("ZHIKU_ENCODER")
    # a store from before the names index: drift named, `--missing` adds the names and keeps the passages
    import shutil
    shutil.rmtree(data_dir / "index-names")
    drift = zhiku("reindex", "--check")
    assert drift.exit_code == 1 and "names index" in drift.output
    added = zhiku("reindex", "--missing")
    assert added.exit_code == 0 and "0 versions embedded" in added.output and "names added to" in added.output, added.output
    assert zhiku("reindex", "--check").exit_code == 0
    found = json.loads(zhiku("search", "房贷利率", "--json").stdout.strip().splitlines()[-1])
    assert found["hits"][0]["entry_id"] == "KB-S002"
    assert {"KB-S003", "KB-S004", "KB-S008"} <= {r["entry_id"] for h in found["hits"] for r in h["related"]} | {h["entry_id"] for h in found["hits"]}


def test_users_create_and_duplicate(data_dir):
    zhiku("db", "upgrade")
    ok = zhiku("users", "create", "--username", "王芳", "--password", "s3cret-pass", "--role", "reviewer", "--department", "合规部")
    assert ok.exit_code == 0, ok.output
    again = zhiku("users", "create", "--username", "王芳", "--password", "s3cret-pass", "--role", "reviewer")
    assert again.exit_code != 0
    assert "已存在" in str(again.exception)
    bad_role = zhiku("users", "create", "--username", "x", "--password", "s3cret-pass", "--role", "boss")
    assert bad_role.exit_code != 0


def test_a_fresh_non_demo_install_has_no_accounts(data_dir):
    zhiku("db", "upgrade")
    engine = make_engine(f"sqlite:///{data_dir / 'zhiku.db'}")
    with engine.connect() as conn:
        assert conn.execute(text('SELECT count(*) FROM "user"')).scalar() == 0
    engine.dispose()


def test_audit_verify_reports_tampering_with_exit_code_1(data_dir):
    zhiku("db", "upgrade")
    zhiku("users", "create", "--username", "a1", "--password", "s3cret-pass", "--role", "agent")
    zhiku("users", "create", "--username", "a2", "--password", "s3cret-pass", "--role", "agent")
    engine = make_engine(f"sqlite:///{data_dir / 'zhiku.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET actor = 'mallory' WHERE id = 1"))
    engine.dispose()
    result = zhiku("audit", "verify")
    assert result.exit_code == 1
    assert "BROKEN at event 1" in result.output


def test_attachments_sweep_removes_unreferenced_files_and_is_audited(data_dir_with_db):
    import hashlib
    import os
    import time

    from sqlmodel import select

    from kb.db import make_engine, session_scope
    from kb.models import AuditEvent

    orphan = b"\x89PNG orphaned screenshot"
    digest = hashlib.sha256(orphan).hexdigest()
    path = data_dir_with_db / "attachments" / digest[:2] / digest
    path.parent.mkdir(parents=True)
    path.write_bytes(orphan)
    old = time.time() - 7200
    os.utime(path, (old, old))
    dry = zhiku("attachments", "sweep", "--dry-run")
    assert dry.exit_code == 0 and "would remove 1" in dry.output and path.exists()
    kept = zhiku("attachments", "sweep", "--grace-hours", "3")
    assert kept.exit_code == 0 and "removed 0" in kept.output and path.exists()
    done = zhiku("attachments", "sweep")
    assert done.exit_code == 0 and "removed 1" in done.output and not path.exists()
    engine = make_engine(f"sqlite:///{data_dir_with_db / 'zhiku.db'}")
    with session_scope(engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "attachments.sweep")).all()
        assert [e.detail["files_removed"] for e in events] == [1]
    engine.dispose()
    assert zhiku("audit", "verify").exit_code == 0
