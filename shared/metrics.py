"""Serving Prometheus metrics from a server of several processes (prometheus-client).

The gateway (gunicorn workers) and a Celery worker (prefork pool) each run several processes, so
prometheus-client runs in multiprocess mode: each process writes its samples to files in
PROMETHEUS_MULTIPROC_DIR, and whoever serves the metrics adds them up. That variable must be set
before prometheus_client is first imported (`shared/metrics_folder.py`, called by
`gateway/gunicorn_conf.py` and `workers/main.py`). The gateway serves its processes' metrics at
/metrics (gateway/metrics.py); each Celery worker serves its own pool's on
RECOG_WORKER_METRICS_PORT (workers/metrics.py), because a worker usually runs on another host or
container than the gateway and cannot share that folder with it: Prometheus scrapes both.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from shared.metrics_folder import ENV as MULTIPROC_ENV


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
