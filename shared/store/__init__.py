"""The result store seam: what gateway and workers need from wherever jobs and results live.

`open_store(settings)` is the one way to get a store. Today's only adapter is Cassandra
(`shared/store/cassandra_results.py`); a new one implements `ResultStore` and raises
`StoreUnavailable` for its own transient failures, so callers never see a driver's exceptions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shared.jobs import JobKey, NewJob, Outcome
    from shared.messaging import JobMessage
    from shared.settings import Settings


class StoreUnavailable(Exception):
    """The store is unreachable or overloaded right now: retry later; the request itself was fine."""


class ResultStore(Protocol):
    """Jobs, batches, results, the audit log and the result cache.

    Rows come back as dicts keyed by column name (see shared/store/schema.py for the columns).
    Every method may raise StoreUnavailable.
    """

    def close(self) -> None: ...

    def ping(self) -> None: ...

    def insert_jobs(self, jobs: Sequence[NewJob], messages: Sequence[JobMessage] = ()) -> None:
        """New job rows, 'queued'; messages: the task of each job about to be queued, kept with
        its open job until the job is final, so a lost message can be sent again."""

    def get_job(self, job_id: uuid.UUID) -> dict | None: ...

    def look_up(
        self, job_ids: Sequence[uuid.UUID], recall_keys: Sequence[tuple[str, str, str]]
    ) -> tuple[dict[uuid.UUID, str], list[dict | None]]:
        """({job_id: status}, [earlier result or None per (sha256, model name, model version)])."""

    def mark_running(
        self, keys: Sequence[JobKey], worker: str, started_at: datetime, wait: bool = True
    ) -> list[object]:
        """With wait=False, returns opaque handles of writes in flight for finish(after=...)."""

    def finish(self, outcomes: Sequence[Outcome], after: Sequence[object] = ()) -> None:
        """Each job's final row, audit row, batch line and cache row, all or nothing per job."""

    def open_jobs(self, hour: str) -> list[dict]:
        """Jobs created in that UTC hour and not yet known final: job_id, message (a JobMessage, or
        None for a row an earlier version left without one), sent_at."""

    def resent(self, hour: str, message: JobMessage, sent_at: datetime) -> None:
        """Record that the job was sent again; writes its whole open row, message included."""

    def forget_open(self, hour: str, job_id: uuid.UUID) -> None: ...

    def insert_batch(self, batch_id: uuid.UUID, name: str, model_name: str, created_at: datetime) -> None: ...

    def get_batch(self, batch_id: uuid.UUID) -> dict | None: ...

    def batch_rows(self, batch_id: uuid.UUID, page_size: int = 1000) -> Iterator[dict]:
        """The batch's job lines in file-name order, fetched lazily as the caller iterates."""


def open_store(settings: Settings) -> ResultStore:
    """Connect to the configured store; call after any fork, never at import."""
    from shared.store.cassandra_results import CassandraStore

    return CassandraStore.open(settings)
