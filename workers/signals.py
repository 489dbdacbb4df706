"""Celery signals: each pool process builds its runtime once, the main process starts its threads."""

from __future__ import annotations

from celery import current_app
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready


@worker_process_init.connect
def _warm_up(**_kwargs) -> None:
    # Loading TensorFlow and the model here, not on the first task, keeps it out of job latency.
    current_app.runtime  # noqa: B018


@worker_process_shutdown.connect
def _close(**_kwargs) -> None:
    current_app.close_runtime()


@worker_ready.connect
def _start_main_process_threads(sender=None, **_kwargs) -> None:
    from workers.metrics import serve_metrics
    from workers.sweeper import start_sweeping

    start_sweeping(sender.app)
    serve_metrics(sender.app.settings)
