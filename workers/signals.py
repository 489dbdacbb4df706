"""Celery signals: each pool process builds its runtime once, the main process starts its threads."""

from __future__ import annotations

import uuid

from celery import current_app
from celery.signals import (
    task_received,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
)


@worker_init.connect
def _set_priority(sender=None, **_kwargs) -> None:
    from workers.priority import lower_priority

    # In the main process, before the pool forks: its processes inherit it.
    lower_priority(sender.app.settings.worker_nice)


@worker_process_init.connect
def _warm_up(**_kwargs) -> None:
    # Loading the model here, not on the first task, keeps it out of job latency.
    current_app.runtime  # noqa: B018


@worker_process_shutdown.connect
def _close(**_kwargs) -> None:
    current_app.close_runtime()


@task_received.connect
def _hold(request=None, **_kwargs) -> None:
    from workers.leases import HELD

    HELD.received(request)


@worker_ready.connect
def _start_main_process_threads(sender=None, **_kwargs) -> None:
    from workers.leases import start_renewing
    from workers.metrics import serve_metrics
    from workers.notifier import start_notifying
    from workers.sweeper import start_sweeping

    # New at every start: a restarted worker never inherits the claims of the one it replaced.
    start_renewing(sender.app, f"{sender.hostname}/{uuid.uuid4().hex[:12]}")
    start_sweeping(sender.app)
    start_notifying(sender.app)
    serve_metrics(sender.app.settings)
