"""The worker's main process serves the Prometheus metrics its pool processes write.

Celery's prefork children are separate processes, so prometheus-client's multiprocess mode adds
their samples up (the folder is prepared in workers/main.py); see shared/metrics.py for why
workers serve their own metrics rather than through the gateway.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


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
