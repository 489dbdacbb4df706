"""The gateway's connections, made lazily per process (after gunicorn forks) and retried on failure."""

from __future__ import annotations

import threading

import redis
from celery import Celery

from shared.cassandra_store import CassandraStore
from shared.image_store import LocalImageStore
from shared.messaging import celery_config
from shared.settings import Settings


class GatewayServices:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.images = LocalImageStore(settings.image_dir)
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=3, socket_connect_timeout=3)
        # The gateway only sends tasks by name; it never imports the worker's task code.
        self.celery = Celery("recog-gateway")
        self.celery.config_from_object(celery_config(settings))
        self._store: CassandraStore | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> CassandraStore:
        """Connect on first use; while Cassandra is down each call tries again and raises."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = CassandraStore.open(self.settings)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self.redis.close()
