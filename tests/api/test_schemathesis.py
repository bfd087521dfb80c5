"""Property-based calls generated from the OpenAPI schema (schemathesis): whatever the input, never a 5xx."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.slow


def test_no_server_errors_on_any_generated_request(api, login):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    headers = {caller: login(caller) for caller in ("admin", "expert", "agent")}
    failures: list[str] = []
    calls: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:  # type: ignore[no-untyped-def]
            calls.append(1)
            for caller, auth in headers.items():
                response = case.call(headers={**(case.headers or {}), **auth})
                if response.status_code >= 500:
                    failures.append(f"{caller} {case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        check()
    assert operations >= 25 and len(calls) >= 5 * operations
    assert failures == []
