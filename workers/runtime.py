"""What a worker process holds for its whole life: models, the stores, a Redis client.

Reached only as `app.runtime` (workers/__init__.py), which makes it after the fork.
"""

from __future__ import annotations

import logging

import redis

from shared.image_store import open_image_store
from shared.settings import Settings
from shared.store import open_store

log = logging.getLogger(__name__)


class WorkerRuntime:
    def __init__(self, settings: Settings) -> None:
        from model.recogniser import configure_threads

        configure_threads(settings.tf_threads)
        self.settings = settings
        self.store = open_store(settings)
        self.images = open_image_store(settings, lambda: self.store.session)
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
