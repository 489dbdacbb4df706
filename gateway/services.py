"""The gateway's connections, made lazily per process (after gunicorn forks) and retried on failure."""

from __future__ import annotations

import threading

import redis
from celery import Celery

from gateway.auth import KeyRing
from gateway.quotas import Quotas
from shared.image_store import open_image_store
from shared.messaging import celery_config
from shared.settings import Settings
from shared.store import ResultStore, open_store


class GatewayServices:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.images = open_image_store(settings, lambda: self.store.session)
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=3, socket_connect_timeout=3)
        # The gateway only sends tasks by name; it never imports the worker's task code.
        self.celery = Celery("recog-gateway")
        self.celery.config_from_object(celery_config(settings))
        self._store: ResultStore | None = None
        self._lock = threading.Lock()
        self.keys = KeyRing(lambda: self.store.keys, settings.key_cache_seconds)
        self.quotas = Quotas(settings, self.redis)

    @property
    def store(self) -> ResultStore:
        """Connect on first use; while the store is down each call tries again and raises
        StoreUnavailable."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self.settings)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self.redis.close()
