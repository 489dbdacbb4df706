"""The store connection of a main-process thread (the lease and the sweeper each keep one)."""

from __future__ import annotations

from shared.settings import Settings
from shared.store import ResultStore, open_store


class StoreConnection:
    """Opened on first use; dropped after a failure, since a shut-down connection never comes
    back by itself, so the next use connects anew."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: ResultStore | None = None

    def get(self) -> ResultStore:
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    def drop(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = None
