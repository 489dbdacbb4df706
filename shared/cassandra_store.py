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


class CassandraStore:
    """Statements are prepared once per store; writes of one job's end go in one logged batch."""

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

    def insert_jobs(self, jobs: list[NewJob]) -> None:
        """A batch job's row and its line in the batch are written together."""
        futures = []
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
                futures.append(self._async(cql.INSERT_JOB, values))
                continue
            both = BatchStatement(batch_type=BatchType.LOGGED)
            both.add(self._prepare(cql.INSERT_BATCH_JOB), (*values, job.batch_id))
            both.add(self._prepare(cql.INSERT_BATCH_ROW), (job.batch_id, job.filename, job.job_id, QUEUED))
            futures.append(self.session.execute_async(both))
        for future in futures:
            future.result()

    def get_job(self, job_id: uuid.UUID) -> dict | None:
        return self._run(cql.SELECT_JOB, (job_id,)).one()

    def statuses(self, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        futures = [self._async(cql.SELECT_STATUS, (job_id,)) for job_id in job_ids]
        found = {}
        for future in futures:
            row = future.result().one()
            if row:
                found[row["job_id"]] = row["status"]
        return found

    def mark_running(self, keys: list[JobKey], worker: str, started_at: datetime) -> None:
        futures = [self._async(cql.MARK_RUNNING, (RUNNING, started_at, worker, k.job_id)) for k in keys]
        futures += [
            self._async(cql.BATCH_ROW_RUNNING, (RUNNING, k.batch_id, k.filename, k.job_id))
            for k in keys
            if k.batch_id is not None
        ]
        for future in futures:
            future.result()

    def insert_batch(self, batch_id: uuid.UUID, name: str, model_name: str, created_at: datetime) -> None:
        self._run(cql.INSERT_BATCH, (batch_id, name, model_name, created_at))

    def get_batch(self, batch_id: uuid.UUID) -> dict | None:
        return self._run(cql.SELECT_BATCH, (batch_id,)).one()

    def batch_rows(self, batch_id: uuid.UUID, page_size: int = 1000) -> Iterator[dict]:
        """The batch's jobs in file-name order, fetched a page at a time as the caller iterates."""
        statement = self._prepare(cql.SELECT_BATCH_ROWS).bind((batch_id,))
        statement.fetch_size = page_size
        return iter(self.session.execute(statement))

    def recall(self, keys: list[tuple[str, str, str]]) -> list[dict | None]:
        """Earlier results for (sha256, model name, model version), or None where there is none."""
        futures = [self._async(cql.RECALL, key) for key in keys]
        return [future.result().one() for future in futures]

    def finish(self, outcomes: list[Outcome]) -> None:
        """Each job's final row, audit row, batch line and cache row land together or not at all."""
        futures = []
        for o in outcomes:
            batch = BatchStatement(batch_type=BatchType.LOGGED)
            for text, values in _finish_statements(o):
                batch.add(self._prepare(text), values)
            futures.append(self.session.execute_async(batch))
        for future in futures:
            future.result()

    def _prepare(self, text: str):
        if text not in self._prepared:
            self._prepared[text] = self.session.prepare(text)
        return self._prepared[text]

    def _run(self, text: str, values: tuple):
        return self.session.execute(self._prepare(text), values)

    def _async(self, text: str, values: tuple):
        return self.session.execute_async(self._prepare(text), values)


def _finish_statements(o: Outcome) -> list[tuple[str, tuple]]:
    hour = hour_bucket(o.finished_at)
    batch_key = (o.batch_id, o.filename, o.job_id)
    model = (o.model_name, o.model_version)
    timing = (o.worker, o.finished_at, o.queue_ms, o.inference_ms, o.batch_size, o.cached, o.job_id)
    if o.error is not None:
        out = [
            (cql.FINISH_FAILED, (FAILED, o.error, o.worker, o.finished_at, o.job_id)),
            (
                cql.AUDIT_FAILED,
                (hour, o.finished_at, o.job_id, FAILED, o.error, o.sha256, o.filename, o.worker),
            ),
            (cql.BATCH_ROW_FAILED, (FAILED, o.error, o.finished_at, *batch_key)),
        ]
        remember = None
    elif o.label is None:
        out = [
            (cql.FINISH_BLANK, (DONE, o.reason, *model, *timing)),
            (
                cql.AUDIT_BLANK,
                (hour, o.finished_at, o.job_id, DONE, o.reason, *model, o.sha256, o.filename, o.worker),
            ),
            (cql.BATCH_ROW_BLANK, (DONE, o.reason, o.cached, o.finished_at, *batch_key)),
        ]
        remember = (cql.REMEMBER_BLANK, (o.sha256, *model, o.job_id, o.finished_at, o.reason))
    else:
        out = [
            (cql.FINISH_LABELLED, (DONE, o.label, o.confidence, o.probabilities, *model, *timing)),
            (
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
            ),
            (cql.BATCH_ROW_LABELLED, (DONE, o.label, o.confidence, o.cached, o.finished_at, *batch_key)),
        ]
        remember = (
            cql.REMEMBER_LABELLED,
            (o.sha256, *model, o.job_id, o.finished_at, o.label, o.confidence, o.probabilities),
        )
    if o.batch_id is None:
        out.pop()
    if remember is not None and not o.cached:
        out.append(remember)
    return out
