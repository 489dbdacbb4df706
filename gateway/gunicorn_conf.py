"""gunicorn settings for the gateway: its processes and threads (RECOG_GATEWAY_WORKERS,
RECOG_GATEWAY_THREADS), prometheus-client's multiprocess mode across its workers, and heap given
back to the system after batch uploads.

`gunicorn -c python:gateway.gunicorn_conf -k gthread gateway.wsgi:app`. The samples folder is
prepared here, in the master, before any worker imports prometheus_client (see
shared/metrics_folder.py).
"""

import ctypes

from shared.metrics_folder import prepare
from shared.settings import Settings

prepare("recog-gateway-metrics-")

_settings = Settings.from_env()
workers = _settings.gateway_workers
threads = _settings.gateway_threads


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _malloc_trim():
    """glibc's malloc_trim(3); None elsewhere (musl, macOS), where nothing is trimmed."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def post_request(worker, req, environ, resp):
    """A batch upload parses up to RECOG_MAX_FILES_PER_REQUEST files in memory; glibc keeps the
    freed heap, so each gunicorn worker stayed as large as its largest upload had made it. No
    library does this, hence ctypes."""
    if _TRIM is not None and req.method == "POST" and req.path.startswith("/v1/batches"):
        _TRIM(0)
