"""The HTTP app boots from settings, serves /healthz and maps domain errors."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.errors import status_for
from kb.errors import RateLimited, Unauthenticated
from kb import errors
from kb.db import make_engine, upgrade
from kb.settings import Settings


def test_healthz_on_a_migrated_database(runtime):
    with TestClient(create_app(runtime=runtime)) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "entries": 0, "entries_in_force": 0}


def test_app_refuses_to_start_without_the_model_and_names_the_fix(settings: Settings, tmp_path):
    settings.embed_model = str(tmp_path / "missing-model")
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    engine.dispose()
    with pytest.raises(errors.Unavailable, match="zhiku models prepare"):
        with TestClient(create_app(settings)):
            pass


def test_app_refuses_to_start_on_an_unmigrated_database(settings: Settings):
    with pytest.raises(errors.Unavailable, match="zhiku db upgrade"):
        with TestClient(create_app(settings)):
            pass


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.NotFound("x"), 404),
        (errors.Conflict("x"), 409),
        (errors.InvalidTransition("x"), 409),
        (errors.ValidationFailed("x"), 422),
        (errors.PermissionDenied("x"), 403),
        (errors.Unavailable("x"), 503),
        (Unauthenticated("x"), 401),
        (RateLimited("x", retry_after=3), 429),
    ],
)
def test_each_domain_error_has_one_status(error, status):
    assert status_for(error) == status
