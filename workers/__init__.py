"""Celery workers: the app factory lives here; tasks never import TensorFlow at import time."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from celery import Celery

from shared.messaging import celery_config
from shared.settings import Settings

if TYPE_CHECKING:
    from workers.runtime import WorkerRuntime


class WorkerApp(Celery):
    """The one way worker code reaches its settings (app.settings) and its runtime (app.runtime)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("recog")
        self.settings = settings

    @functools.cached_property
    def runtime(self) -> WorkerRuntime:
        """This process's models and connections, made on first use: in a pool process, after the
        fork (a Cassandra session or TensorFlow state made before it hangs in the children)."""
        from workers.runtime import WorkerRuntime

        return WorkerRuntime(self.settings)

    def close_runtime(self) -> None:
        runtime = self.__dict__.pop("runtime", None)
        if runtime is not None:
            runtime.close()


# Messages a pool process takes ahead by default, at most: 32 clients' single jobs gathered as
# well at 16 as at 64 (bench/prefetch.py), and a worker then holds a quarter as many bulk chunks,
# so one added during a batch shares it (a third of a 3,000-image batch, against 0-2 % at 64).
# It caps a gathered batch too: a worker of two processes holds 32 jobs at most, so batches of
# RECOG_MAX_BATCH above that need RECOG_PREFETCH_MULTIPLIER raised.
PREFETCH_CAP = 16


def default_prefetch(max_batch: int) -> int:
    """celery-batches can only gather what the worker has prefetched: room for a batch, up to
    PREFETCH_CAP, and at least 4."""
    return max(4, min(max_batch, PREFETCH_CAP))


def worker_config(settings: Settings) -> dict:
    """The settings only a consuming worker needs, on top of what senders share."""
    return {
        **celery_config(settings),
        # Loading the model in worker_process_init takes longer than 4 s where TensorFlow must
        # convert its weights (a model folder without its flatbuffer, model/lite.py).
        "worker_proc_alive_timeout": 120,
        "worker_concurrency": settings.worker_concurrency,
        "worker_prefetch_multiplier": settings.prefetch_multiplier or default_prefetch(settings.max_batch),
        # The pool kills a process past the limit (SIGTERM, then SIGKILL): a soft limit would
        # only raise between Python bytecodes, never inside the C decoder that is stuck.
        "task_time_limit": settings.task_time_limit,
        "worker_max_memory_per_child": settings.worker_max_memory_mb * 1024 or None,
    }


def create_celery(settings: Settings) -> WorkerApp:
    app = WorkerApp(settings)
    app.config_from_object(worker_config(settings))
    from workers import signals  # noqa: F401  (connects the per-process signals)
    from workers.leases import ForgetHeldOnReconnect
    from workers.tasks import register_tasks

    app.steps["consumer"].add(ForgetHeldOnReconnect)
    register_tasks(app)
    return app
