"""Prometheus metrics at /metrics (outside /api/v1, like /healthz; protect it at the network edge)."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from api.deps import SessionDep
from kb import metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
def scrape(session: SessionDep) -> Response:
    """Request latency per route, searches, card pushes, publishes, lint findings by flag, outbox lag."""
    metrics.refresh_outbox(session=session)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
