"""What a worker process holds for its whole life: models, a Cassandra session, a Redis client.

Created after the fork (worker_process_init, or on the first task under a non-forking pool):
a Cassandra session or TensorFlow state made before the fork hangs in the children.
"""

from __future__ import annotations

import logging

import redis
from celery import current_app
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready

from shared.cassandra_store import CassandraStore
from shared.image_store import LocalImageStore
from shared.settings import Settings

log = logging.getLogger(__name__)


class WorkerRuntime:
    def __init__(self, settings: Settings) -> None:
        from model.recogniser import configure_threads

        configure_threads(settings.tf_threads)
        self.settings = settings
        self.store = CassandraStore.open(settings)
        self.images = LocalImageStore(settings.image_dir)
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        self._recognisers: dict = {}
        self.recogniser(settings.model)

    def recogniser(self, name: str):
        """The model called name, loaded on first use and again whenever its weights change."""
        from model.registry import describe

        current = self._recognisers.get(name)
        if current is None or current.info.version != describe(self.settings.models_dir, name).version:
            from model.recogniser import Recogniser

            current = self._recognisers[name] = Recogniser(self.settings.models_dir, name)
            log.info("loaded model %s version %s", name, current.info.version)
        return current

    def close(self) -> None:
        self.store.close()
        self.redis.close()


_runtime: WorkerRuntime | None = None


def get_runtime(settings: Settings) -> WorkerRuntime:
    global _runtime
    if _runtime is None:
        _runtime = WorkerRuntime(settings)
    return _runtime


@worker_process_init.connect
def _warm_up(**_kwargs) -> None:
    get_runtime(current_app.recog_settings)


@worker_process_shutdown.connect
def _close(**_kwargs) -> None:
    global _runtime
    if _runtime is not None:
        _runtime.close()
        _runtime = None


@worker_ready.connect
def _start_main_process_threads(sender=None, **_kwargs) -> None:
    from workers.metrics import serve_metrics
    from workers.sweeper import start_sweeping

    start_sweeping(sender.app, sender.app.recog_settings)
    serve_metrics(sender.app.recog_settings)
