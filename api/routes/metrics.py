"""Prometheus metrics at /metrics (outside /api/v1, like /healthz). With `ZHIKU_METRICS_TOKEN` set, a
scrape must send it as a bearer token (Prometheus: `authorization: {credentials: …}`); unset, the
endpoint is open and belongs behind a network rule."""
from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from api.deps import SessionDep, get_runtime
from api.runtime import Runtime
from kb import metrics
from kb.errors import Unauthenticated

router = APIRouter(tags=["health"])


def scrape_allowed(runtime: Annotated[Runtime, Depends(get_runtime)],
                   authorization: Annotated[str | None, Header()] = None) -> None:
    expected = runtime.settings.metrics_token
    if not expected:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise Unauthenticated("指标接口需要令牌 /metrics needs the scrape token (ZHIKU_METRICS_TOKEN)")


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(scrape_allowed)])
def scrape(session: SessionDep) -> Response:
    """Request latency per route, searches, card pushes, publishes, lint findings by flag, outbox lag."""
    metrics.refresh_outbox(session=session)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
