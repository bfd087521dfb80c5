"""The running parts of one Zhiku process (database engine now; index and models join as they land)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from kb.db import current_revision, make_engine
from kb.errors import Unavailable
from kb.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine

    @classmethod
    def open(cls, settings: Settings, *, require_schema: bool = True) -> Runtime:
        """Open the database; with require_schema, refuse to run on an unmigrated database."""
        engine = make_engine(settings.resolved_database_url)
        if require_schema and current_revision(engine) is None:
            engine.dispose()
            raise Unavailable("数据库未初始化 database not initialised: run `zhiku db upgrade` first")
        return cls(settings=settings, engine=engine)

    def close(self) -> None:
        self.engine.dispose()
