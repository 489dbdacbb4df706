"""GET /metrics: the gateway's Prometheus metrics, all gunicorn processes added up, and queue depths."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

from shared.metrics import QueueDepth, render

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    services = current_app.extensions["recog"]
    queues = (services.settings.queue, services.settings.bulk_queue)
    return Response(render(QueueDepth(services.redis, queues)), content_type=CONTENT_TYPE_LATEST)
