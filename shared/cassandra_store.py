"""Every read and write of jobs, batches, the audit log and the result cache."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from cassandra.cluster import Cluster, Session
from cassandra.query import BatchStatement, BatchType

from shared import statements as cql
from shared.cassandra_session import connect
from shared.jobs import DONE, FAILED, QUEUED, RUNNING, hour_bucket
from shared.settings import Settings


@dataclass(frozen=True)
class JobKey:
    """What locates a job's rows: its id, and for a batch job the batch and file name."""

    job_id: uuid.UUID
    batch_id: uuid.UUID | None = None
    filename: str = ""


@dataclass
class NewJob:
    job_id: uuid.UUID
    filename: str
    sha256: str
    size_bytes: int
    image_format: str
    width: int
    height: int
    model_name: str
    created_at: datetime
    batch_id: uuid.UUID | None = None


@dataclass
class Outcome:
    """How one job ended; label None with reason set means "no digit", error set means failed."""

    job_id: uuid.UUID
    sha256: str
    filename: str
    worker: str
    finished_at: datetime
    label: str | None = None
    confidence: float | None = None
    probabilities: list[float] = field(default_factory=list)
    reason: str | None = None
    error: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    batch_size: int = 0
    batch_id: uuid.UUID | None = None
    cached: bool = False
    # When the job was created: locates its open_jobs row, removed with the final write.
    created_at: datetime | None = None


# Statements per unlogged batch: keeps a batch well under Cassandra 5.0's 50 kB refusal threshold.
GROUP_LIMIT = 50


class CassandraStore:
    """Statements are prepared once per store and always bound."""

    def __init__(self, cluster: Cluster, session: Session) -> None:
        self.cluster = cluster
        self.session = session
        self._prepared: dict[str, object] = {}

    @classmethod
    def open(cls, settings: Settings) -> CassandraStore:
        return cls(*connect(settings, settings.cassandra_keyspace))

    def close(self) -> None:
        self.cluster.shutdown()

    def ping(self) -> None:
        self.session.execute("SELECT release_version FROM system.local", timeout=3.0)

    def insert_job(self, job: NewJob) -> None:
        self.insert_jobs([job])

    def insert_jobs(self, jobs: list[NewJob], messages: dict[uuid.UUID, str] | None = None) -> None:
        """Job rows one by one; a batch's lines together, one unlogged batch per partition.

        messages: the task message of each job about to be queued, kept in open_jobs until it ends.
        """
        writes = [
            (cql.OPEN_JOB, (hour_bucket(job.created_at), job.job_id, messages[job.job_id], job.created_at))
            for job in jobs
            if messages and job.job_id in messages
        ]
        for job in jobs:
            values = (
                job.job_id,
                QUEUED,
                job.filename,
                job.sha256,
                job.size_bytes,
                job.image_format,
                job.width,
                job.height,
                job.model_name,
                job.created_at,
            )
            if job.batch_id is None:
                writes.append((cql.INSERT_JOB, values))
            else:
                writes.append((cql.INSERT_BATCH_JOB, (*values, job.batch_id)))
        lines = [
            (job.batch_id, (cql.INSERT_BATCH_ROW, (job.batch_id, job.filename, job.job_id, QUEUED)))
            for job in jobs
            if job.batch_id is not None
        ]
        self._write(writes, lines)

    def get_job(self, job_id: uuid.UUID) -> dict | None:
        return self._run(cql.SELECT_JOB, (job_id,)).one()

    def look_up(self, job_ids: list[uuid.UUID], recall_keys: list[tuple[str, str, str]]):
        """Job statuses and earlier results, asked for together: one round trip, not two.

        Returns ({job_id: status}, [earlier result or None per recall key]); an earlier result is
        keyed by (sha256, model name, model version).
        """
        status_futures = [self._async(cql.SELECT_STATUS, (job_id,)) for job_id in job_ids]
        recall_futures = [self._async(cql.RECALL, key) for key in recall_keys]
        statuses = {}
        for future in status_futures:
            row = future.result().one()
            if row:
                statuses[row["job_id"]] = row["status"]
        return statuses, [future.result().one() for future in recall_futures]

    def mark_running(self, keys: list[JobKey], worker: str, started_at: datetime, wait: bool = True) -> list:
        """A batch job shows 'running' in its batch line only: one write a chunk, not one a job.

        wait=False returns the writes in flight, for finish(after=...) to wait on: the final
        status still wins, its write being issued later (Cassandra keeps the newest write).
        """
        writes = [
            (cql.MARK_RUNNING, (RUNNING, started_at, worker, k.job_id)) for k in keys if k.batch_id is None
        ]
        lines = [
            (k.batch_id, (cql.BATCH_ROW_RUNNING, (RUNNING, k.batch_id, k.filename, k.job_id)))
            for k in keys
            if k.batch_id is not None
        ]
        return self._write(writes, lines, wait)

    def open_jobs(self, hour: str) -> list[dict]:
        return list(self._run(cql.SELECT_OPEN, (hour,)))

    def resent(self, hour: str, job_id: uuid.UUID, sent_at: datetime) -> None:
        self._run(cql.RESENT_JOB, (sent_at, hour, job_id))

    def forget_open(self, hour: str, job_id: uuid.UUID) -> None:
        self._run(cql.CLOSE_JOB, (hour, job_id))

    def insert_batch(self, batch_id: uuid.UUID, name: str, model_name: str, created_at: datetime) -> None:
        self._run(cql.INSERT_BATCH, (batch_id, name, model_name, created_at))

    def get_batch(self, batch_id: uuid.UUID) -> dict | None:
        return self._run(cql.SELECT_BATCH, (batch_id,)).one()

    def batch_rows(self, batch_id: uuid.UUID, page_size: int = 1000) -> Iterator[dict]:
        """The batch's jobs in file-name order, fetched a page at a time as the caller iterates."""
        statement = self._prepare(cql.SELECT_BATCH_ROWS).bind((batch_id,))
        statement.fetch_size = page_size
        return iter(self.session.execute(statement))

    def finish(self, outcomes: list[Outcome], after: list = ()) -> None:
        """Each job's row, audit row, batch line and cache row land together or not at all.

        One logged batch per job, jobs written concurrently. Per-partition unlogged batches with
        the job rows written last were not consistently faster here (bench/result_writes.py:
        0.64x to 1.04x across runs), so the all-or-nothing write stays.
        """
        futures = []
        for o in outcomes:
            batch = BatchStatement(batch_type=BatchType.LOGGED)
            for text, values in filter(None, _finish_statements(o)):
                batch.add(self._prepare(text), values)
            if o.created_at is not None:
                batch.add(self._prepare(cql.CLOSE_JOB), (hour_bucket(o.created_at), o.job_id))
            futures.append(self.session.execute_async(batch))
        for future in [*after, *futures]:
            future.result()

    def _write(
        self,
        singles: list[tuple[str, tuple]],
        grouped: list[tuple[object, tuple[str, tuple]]],
        wait: bool = True,
    ) -> list:
        """Run single statements and per-partition unlogged batches concurrently; wait for all,
        or with wait=False hand back the futures."""
        futures = [self._async(text, values) for text, values in singles]
        by_partition: dict[object, list[tuple[str, tuple]]] = {}
        for partition, statement in grouped:
            by_partition.setdefault(partition, []).append(statement)
        for statements in by_partition.values():
            for start in range(0, len(statements), GROUP_LIMIT):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for text, values in statements[start : start + GROUP_LIMIT]:
                    batch.add(self._prepare(text), values)
                futures.append(self.session.execute_async(batch))
        if not wait:
            return futures
        for future in futures:
            future.result()
        return []

    def _prepare(self, text: str):
        if text not in self._prepared:
            self._prepared[text] = self.session.prepare(text)
        return self._prepared[text]

    def _run(self, text: str, values: tuple):
        return self.session.execute(self._prepare(text), values)

    def _async(self, text: str, values: tuple):
        return self.session.execute_async(self._prepare(text), values)


def _finish_statements(o: Outcome):
    """(job row, audit row, batch line or None, cache row or None) for one finished job."""
    hour = hour_bucket(o.finished_at)
    batch_key = (o.batch_id, o.filename, o.job_id)
    model = (o.model_name, o.model_version)
    timing = (o.worker, o.finished_at, o.queue_ms, o.inference_ms, o.batch_size, o.cached, o.job_id)
    if o.error is not None:
        job_row = (cql.FINISH_FAILED, (FAILED, o.error, o.worker, o.finished_at, o.job_id))
        audit = (
            cql.AUDIT_FAILED,
            (hour, o.finished_at, o.job_id, FAILED, o.error, o.sha256, o.filename, o.worker),
        )
        line = (cql.BATCH_ROW_FAILED, (FAILED, o.error, o.finished_at, *batch_key))
        remember = None
    elif o.label is None:
        job_row = (cql.FINISH_BLANK, (DONE, o.reason, *model, *timing))
        audit = (
            cql.AUDIT_BLANK,
            (hour, o.finished_at, o.job_id, DONE, o.reason, *model, o.sha256, o.filename, o.worker),
        )
        line = (cql.BATCH_ROW_BLANK, (DONE, o.reason, o.cached, o.finished_at, *batch_key))
        remember = (cql.REMEMBER_BLANK, (o.sha256, *model, o.job_id, o.finished_at, o.reason))
    else:
        job_row = (cql.FINISH_LABELLED, (DONE, o.label, o.confidence, o.probabilities, *model, *timing))
        audit = (
            cql.AUDIT_LABELLED,
            (
                hour,
                o.finished_at,
                o.job_id,
                DONE,
                o.label,
                o.confidence,
                *model,
                o.sha256,
                o.filename,
                o.worker,
            ),
        )
        line = (cql.BATCH_ROW_LABELLED, (DONE, o.label, o.confidence, o.cached, o.finished_at, *batch_key))
        remember = (
            cql.REMEMBER_LABELLED,
            (o.sha256, *model, o.job_id, o.finished_at, o.label, o.confidence, o.probabilities),
        )
    return (job_row, audit, line if o.batch_id is not None else None, remember if not o.cached else None)
