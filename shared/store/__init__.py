"""The result store seam: what gateway and workers need from wherever jobs and results live.

`open_store(settings)` is the one way to get a store. Today's only adapter is Cassandra
(`shared/store/cassandra_results.py`); a new one implements `ResultStore` and raises
`StoreUnavailable` for its own transient failures, so callers never see a driver's exceptions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shared.jobs import BatchHeader, JobKey, NewJob, Outcome
    from shared.messaging import Work
    from shared.parts import Part, PartCount
    from shared.settings import Settings
    from shared.store.api_keys import KeyTable


class StoreUnavailable(Exception):
    """The store is unreachable or overloaded right now: retry later; the request itself was fine."""


class ResultStore(Protocol):
    """Jobs, batches, results, the audit log and the result cache.

    Rows come back as dicts keyed by column name (see shared/store/schema.py for the columns).
    Every method may raise StoreUnavailable.
    """

    keys: KeyTable  # the API keys (shared/store/api_keys.py)

    def close(self) -> None: ...

    def ping(self) -> None: ...

    def insert_jobs(
        self,
        jobs: Sequence[NewJob],
        work: Sequence[Work] = (),
        refused: Sequence[tuple[NewJob, Outcome]] = (),
        parts: Sequence[Part] = (),
    ) -> None:
        """New job rows, 'queued', written after the work (task messages) that will finish them:
        kept until it expires, so the sweeper can send again what Redis lost. refused: files
        failed at upload, each written failed with its outcome at once, never 'queued'. parts:
        the parts of a batch these jobs are counted in, written with the work."""

    def record_waited(self, job: NewJob, work: Work) -> None:
        """A single job sent with its row left to its worker, recorded after all as insert_jobs
        records it (its wait ran out first), without hiding anything the worker wrote already."""

    def get_job(self, job_id: uuid.UUID) -> dict | None: ...

    def look_up(
        self,
        job_ids: Sequence[uuid.UUID],
        recall_keys: Sequence[tuple[str, str, str, str | None]],
        meanwhile: Callable[[], object] | None = None,
    ) -> tuple[dict[uuid.UUID, str], list[dict | None]]:
        """({job_id: status, or CANCEL_ASKED for an open job whose cancel was asked for}, [the
        tenant's earlier result or None per (sha256, model name, model version, tenant)]).
        meanwhile: called once the reads are sent, before their answers are waited for."""

    def job_rows(self, job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict]:
        """Whole job rows by id, for those that exist."""

    def cancel_job(self, job: dict, at: datetime) -> None:
        """Ask for a job's cancel (job: its row as read); its worker carries it out."""

    def cancel_batch(self, batch_id: uuid.UUID, at: datetime) -> None:
        """Ask for a batch's cancel, and close it; its workers carry it out."""

    def cancelled_batch_jobs(self, keys: Sequence[JobKey]) -> set[uuid.UUID]:
        """The batch jobs among keys whose cancel, or whose batch's, was asked for."""

    def requeue(self, keys: Sequence[JobKey], work: Sequence[Work]) -> None:
        """Failed batch jobs 'queued' again, their failure cleared, after the work that runs them."""

    def mark_running(
        self, keys: Sequence[JobKey], worker: str, started_at: datetime, wait: bool = True
    ) -> list[object]:
        """Also sets how many jobs of each part named in keys are running now. With wait=False,
        returns opaque handles of writes in flight for finish(after=...)."""

    def finish(
        self,
        outcomes: Sequence[Outcome],
        after: Sequence[object] = (),
        pace: Callable[[], bool] | None = None,
    ) -> None:
        """Each job's final row, audit row, batch line and cache row, all or nothing per job.
        pace: called before each write; True sends that write alone (bulk work yielding to
        single jobs: workers/priority.py)."""

    def open_work(self, minute: str) -> list[dict]:
        """The work first sent in that UTC minute: work_id, chunk, sent_at (of the latest send).
        Without its messages, which only work_messages reads."""

    def work_messages(self, minute: str, work_ids: Sequence[uuid.UUID]) -> dict:
        """{work id: its messages (a tuple of JobMessage, or None for a row that cannot be read)}
        for those of work_ids whose rows are in that minute."""

    def resent(self, minute: str, work: Work) -> None:
        """Record that the work was sent again: its whole row, in the minute it was first sent."""

    def start_work(self, work_id: uuid.UUID, worker: str) -> int:
        """Record that a worker begins this work (a chunk, or one job alone); returns how many
        times it was begun before. Kept as long as open work."""

    def settled_minutes(self, day: str) -> set[str]:
        """The minutes of that UTC day ('YYYY-MM-DD') whose every job is known final."""

    def settle(self, minutes: Sequence[str]) -> None:
        """Record those minutes as settled (each 'YYYY-MM-DDTHH:MM')."""

    def renew_lease(self, instance: str, held: Sequence[uuid.UUID], newest_sent: dict, ttl: int) -> None:
        """A worker's claim, for ttl seconds, on the work it holds; newest_sent: {queue: the newest
        sent_at it has read from that queue}."""

    def leases(self) -> list[dict]:
        """The live leases: instance, held (a set of work ids), newest_sent ({queue: datetime})."""

    def insert_batch(self, header: BatchHeader) -> None: ...

    def insert_rescore(self, header: BatchHeader, source: uuid.UUID) -> None:
        """A re-score's header, closed and not yet listed (list_batch lists it)."""

    def list_batch(self, header: BatchHeader) -> None:
        """The batch in its tenant's list (GET /v1/batches)."""

    def close_batch(self, batch_id: uuid.UUID) -> None: ...

    def tenant_batches(self, tenant: str, limit: int, after: tuple[datetime, uuid.UUID] | None) -> list[dict]:
        """Up to limit of the tenant's batches, newest first, after the one a page showed last."""

    def claim_upload(
        self, scope: str, key: str, seed: uuid.UUID, claimed_at: datetime, ttl: int
    ) -> dict | None:
        """Take up an Idempotency-Key: None if it was new (its row now holds seed and claimed_at,
        for ttl seconds), else its row as it stands (seed, claimed_at, fingerprint, answer)."""

    def update_upload(self, scope: str, key: str, was: datetime, row: dict, ttl: int) -> bool:
        """Write the key's whole row (seed, claimed_at, fingerprint, answer) for ttl seconds, if
        it is still claimed at `was`, by the caller; False if another request took it since."""

    def get_batch(self, batch_id: uuid.UUID) -> dict | None: ...

    def batch_rows(self, batch_id: uuid.UUID, page_size: int = 1000) -> Iterator[dict]:
        """The batch's job lines in file-name order, fetched lazily as the caller iterates."""

    def batch_parts(self, batch_id: uuid.UUID) -> dict[uuid.UUID, PartCount]:
        """{part id: its counts} for every part of a batch: what a progress poll reads."""

    def part_count(self, batch_id: uuid.UUID, part_id: uuid.UUID) -> PartCount | None: ...

    def part_members(self, batch_id: uuid.UUID, part_id: uuid.UUID) -> tuple[JobKey, ...] | None:
        """The jobs a part counts, or None for a part never written."""

    def parts_members(self, batch_id: uuid.UUID, part_ids: Sequence[uuid.UUID]) -> dict:
        """{part id: its members} for those of part_ids that have them."""

    def batch_lines(self, keys: Sequence[JobKey]) -> list[dict]:
        """Each key's batch line (status, cached, finished_at), or {} where it has none."""

    def count_part(self, batch_id: uuid.UUID, part_id: uuid.UUID, count: PartCount) -> None:
        """Write a part's counts whole."""


def open_store(settings: Settings) -> ResultStore:
    """Connect to the configured store; call after any fork, never at import."""
    from shared.store.cassandra_results import CassandraStore

    return CassandraStore.open(settings)
