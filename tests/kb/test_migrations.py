"""The migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import kb.models  # noqa: F401
import retrieval.analytics.models  # noqa: F401
import retrieval.models  # noqa: F401
import review_workflow.models  # noqa: F401
from kb.db import alembic_config, current_revision, upgrade


def test_models_and_migrations_agree(any_engine):
    with any_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_upgrade_is_idempotent(any_engine):
    head = current_revision(any_engine)
    upgrade(any_engine)
    assert current_revision(any_engine) == head == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
