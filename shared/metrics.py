"""Prometheus metrics of the gateway and the workers (prometheus-client).

Both run several processes (gunicorn workers, Celery's prefork pool), so prometheus-client runs in
multiprocess mode: each process writes its samples to files in PROMETHEUS_MULTIPROC_DIR, and
whoever serves the metrics adds them up. That variable must be set before prometheus_client is
first imported (`shared/metrics_folder.py`, called by `gateway/gunicorn_conf.py` and
`workers/main.py`). The gateway serves
its processes' metrics at /metrics; each Celery worker serves its own pool's on
RECOG_WORKER_METRICS_PORT, because a worker usually runs on another host or container than the
gateway and cannot share that folder with it: Prometheus scrapes both, like any two targets.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from shared.metrics_folder import ENV as MULTIPROC_ENV

JOBS_ACCEPTED = Counter(
    "recog_jobs_accepted", "Images accepted by the gateway and queued", ["kind"]
)  # kind: single, batch
JOBS_REJECTED = Counter(
    "recog_jobs_rejected", "Refused: a whole request, or one file of a batch, by error code", ["reason"]
)
JOBS_FINISHED = Counter(
    "recog_jobs_finished", "Jobs a worker finished, by final status and model", ["status", "model"]
)
JOBS_CACHED = Counter("recog_jobs_cached", "Jobs answered from an earlier result for the same bytes")
BATCH_SIZE = Histogram(
    "recog_batch_size", "Images per model call", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
)
INFERENCE_SECONDS = Histogram(
    "recog_inference_seconds",
    "One model call (decode + preprocessing + the network) for a whole batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOB_SECONDS = Histogram(
    "recog_job_seconds",
    "End to end: from the upload being accepted to its result stored",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)


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


def scrape_registry(*extra) -> CollectorRegistry:
    """A registry for one scrape: every process's samples (or this process's), plus extra collectors."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    for collector in extra:
        registry.register(collector)
    return registry


def render(*extra) -> bytes:
    return generate_latest(scrape_registry(*extra))
