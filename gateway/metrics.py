"""The gateway's Prometheus metrics, and GET /metrics: all gunicorn processes added up, plus queue depths."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, Counter
from prometheus_client.core import GaugeMetricFamily

from shared.metrics import render

JOBS_ACCEPTED = Counter(
    "recog_jobs_accepted", "Images accepted by the gateway and queued", ["kind"]
)  # kind: single, batch
JOBS_REJECTED = Counter(
    "recog_jobs_rejected", "Refused: a whole request, or one file of a batch, by error code", ["reason"]
)
REQUESTS_REFUSED = Counter(
    "recog_requests_refused",
    "Requests refused for their key (401, 403) or for backpressure (429, 503 queue_full), by error code",
    ["reason"],
)
UPLOADS_REPLAYED = Counter(
    "recog_uploads_replayed", "Uploads retried under an Idempotency-Key and answered as the first time"
)
UPLOADS_IN_PROGRESS = Counter(
    "recog_uploads_in_progress",
    "Uploads refused 409: another request under their Idempotency-Key had it, or had died with it",
)
QUEUED_LATER = Counter(
    "recog_jobs_queued_later", "Images accepted while Redis was down: the workers' sweeper queues them"
)

bp = Blueprint("metrics", __name__)


class QueueDepth:
    """Tasks waiting in each Redis queue, read at scrape time (a gauge no process owns)."""

    def __init__(self, client, queues: tuple[str, ...]) -> None:
        self.client, self.queues = client, queues

    def collect(self):
        depth = GaugeMetricFamily("recog_queue_depth", "Task messages waiting in the queue", labels=["queue"])
        try:
            pipe = self.client.pipeline(transaction=False)
            for queue in self.queues:
                pipe.llen(queue)
            lengths = pipe.execute()
        except Exception:  # Redis down: no sample rather than a failed scrape; /readyz says why
            return
        for queue, length in zip(self.queues, lengths, strict=True):
            depth.add_metric([queue], length)
        yield depth


@bp.get("/metrics")
def metrics():
    services = current_app.extensions["recog"]
    queues = (services.settings.queue, services.settings.bulk_queue)
    return Response(render(QueueDepth(services.redis, queues)), content_type=CONTENT_TYPE_LATEST)
