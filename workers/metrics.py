"""The worker's Prometheus metrics: its pool processes write them, its main process serves them.

Celery's prefork children are separate processes, so prometheus-client's multiprocess mode adds
their samples up (the folder is prepared in workers/main.py); see shared/metrics.py for why
workers serve their own metrics rather than through the gateway.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

JOBS_FINISHED = Counter(
    "recog_jobs_finished", "Jobs a worker finished, by final status and model", ["status", "model"]
)
JOBS_CACHED = Counter("recog_jobs_cached", "Jobs answered from an earlier result for the same bytes")
BATCH_SIZE = Histogram(
    "recog_batch_size", "Images per model call", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
)
INFERENCE_SECONDS = Histogram(
    "recog_inference_seconds",
    "One model call (the network alone) for a whole batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
JOB_SECONDS = Histogram(
    "recog_job_seconds",
    "End to end: from the upload being accepted to its result stored",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)


def serve_metrics(settings) -> None:
    """Serve the pool's metrics from the worker's main process; a taken port is logged, not fatal."""
    if not settings.worker_metrics_port:
        return
    from prometheus_client import start_http_server

    from shared.metrics import scrape_registry

    try:
        start_http_server(
            settings.worker_metrics_port, settings.worker_metrics_host, registry=scrape_registry()
        )
    except OSError as exc:
        log.warning(
            "worker metrics not served on %s:%s: %s (set RECOG_WORKER_METRICS_PORT to a free port)",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
            exc,
        )
        return
    log.info("metrics on http://%s:%s/metrics", settings.worker_metrics_host, settings.worker_metrics_port)
