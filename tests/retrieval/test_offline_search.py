"""With the network blocked: prepare the bundled model, index demo entries, search — the real parts."""
from __future__ import annotations

import itertools

import pytest

from api.runtime import Runtime
from ingestion.model_prepare import prepare_e5_model
from ingestion.parsers.markdown import read_entry_file
from kb import service
from kb.db import make_engine, session_scope, upgrade
from kb.demo import DEMO_ENTRIES
from kb.settings import Settings

pytestmark = pytest.mark.slow


def test_prepare_index_and_search_offline(tmp_path, no_network):
    model = prepare_e5_model(tmp_path / "models" / "multilingual-e5-small")
    settings = Settings(data_dir=tmp_path / "data", embed_model=str(model), _env_file=None)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    engine.dispose()
    runtime = Runtime.open(settings)
    try:
        wanted = {"KB-S038", "KB-S002", "KB-S003"}
        paths = sorted(DEMO_ENTRIES.glob("*.md"))
        chosen = [p for p in paths if p.stem in wanted] + list(itertools.islice((p for p in paths if p.stem not in wanted), 30))
        with session_scope(runtime.engine) as session:
            for path in chosen:
                service.create_entry(session=session, data=read_entry_file(path), actor="test")
        report = runtime.sync_index()
        assert report.versions_indexed == len(chosen)
        response = runtime.searcher.search("數字人民幣錢包怎麼開通？", top_k=3)
        assert response.hits[0].entry_id == "KB-S038"
        rate = runtime.searcher.search("房贷利率", top_k=1)
        assert rate.hits[0].entry_id == "KB-S002"
        assert "KB-S003" in {r.entry_id for r in rate.hits[0].related}
    finally:
        runtime.close()
    assert no_network == []
