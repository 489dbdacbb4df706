"""gunicorn settings for the gateway: prometheus-client's multiprocess mode across its workers.

`gunicorn -c python:gateway.gunicorn_conf gateway.wsgi:app`. The samples folder is prepared here,
in the master, before any worker imports prometheus_client (see shared/metrics_folder.py).
"""

from shared.metrics_folder import prepare

prepare("recog-gateway-metrics-")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
