"""Every read and write of job rows and the audit log, as prepared statements."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from cassandra import ConsistencyLevel, DriverException, RequestExecutionException
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType, dict_factory

from shared.jobs import DONE, FAILED, QUEUED, RUNNING, hour_bucket
from shared.settings import Settings

INSERT_JOB = """INSERT INTO jobs (job_id, status, filename, sha256, size_bytes, image_format,
    width, height, model_name, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
SELECT_JOB = "SELECT * FROM jobs WHERE job_id = ?"
SELECT_STATUS = "SELECT job_id, status FROM jobs WHERE job_id = ?"
MARK_RUNNING = "UPDATE jobs SET status = ?, started_at = ?, worker = ? WHERE job_id = ?"
FINISH_LABELLED = """UPDATE jobs SET status = ?, label = ?, confidence = ?, probabilities = ?,
    model_name = ?, model_version = ?, worker = ?, finished_at = ?, queue_ms = ?,
    inference_ms = ?, batch_size = ? WHERE job_id = ?"""
FINISH_BLANK = """UPDATE jobs SET status = ?, reason = ?, model_name = ?, model_version = ?,
    worker = ?, finished_at = ?, queue_ms = ?, inference_ms = ?, batch_size = ? WHERE job_id = ?"""
FINISH_FAILED = "UPDATE jobs SET status = ?, error = ?, worker = ?, finished_at = ? WHERE job_id = ?"
AUDIT_LABELLED = """INSERT INTO predictions_by_hour (hour, finished_at, job_id, status, label,
    confidence, model_name, model_version, sha256, filename, worker)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
AUDIT_BLANK = """INSERT INTO predictions_by_hour (hour, finished_at, job_id, status, reason,
    model_name, model_version, sha256, filename, worker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
AUDIT_FAILED = """INSERT INTO predictions_by_hour (hour, finished_at, job_id, status, error,
    sha256, filename, worker) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""


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


def connect(settings: Settings, keyspace: str | None = None) -> tuple[Cluster, Session]:
    """A cluster and session; call after any fork, never at import."""
    try:
        return _connect(settings, keyspace, settings.cassandra_protocol_version)
    except NoHostAvailable as exc:
        # Cassandra 2.1 answers the driver's opening v5 offer with a generic server error
        # instead of a protocol error, so the driver never steps down by itself.
        if settings.cassandra_protocol_version or "unsupported protocol version" not in str(exc):
            raise
        return _connect(settings, keyspace, 3)


def _connect(settings: Settings, keyspace: str | None, protocol: int) -> tuple[Cluster, Session]:
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        consistency_level=getattr(ConsistencyLevel, settings.cassandra_consistency),
        request_timeout=10.0,
        row_factory=dict_factory,
    )
    cluster = Cluster(
        list(settings.cassandra_hosts),
        port=settings.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=3.0,
        control_connection_timeout=3.0,
        **({"protocol_version": protocol} if protocol else {}),
    )
    try:
        session = cluster.connect(keyspace)
    except Exception:
        cluster.shutdown()
        raise
    return cluster, session


class CassandraStore:
    """Job rows and the hourly audit log; statements are prepared once per store."""

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
        self._run(
            INSERT_JOB,
            (
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
            ),
        )

    def get_job(self, job_id: uuid.UUID) -> dict | None:
        return self._run(SELECT_JOB, (job_id,)).one()

    def statuses(self, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        futures = [self._async(SELECT_STATUS, (job_id,)) for job_id in job_ids]
        found = {}
        for future in futures:
            row = future.result().one()
            if row:
                found[row["job_id"]] = row["status"]
        return found

    def mark_running(self, job_ids: list[uuid.UUID], worker: str, started_at: datetime) -> None:
        futures = [self._async(MARK_RUNNING, (RUNNING, started_at, worker, job_id)) for job_id in job_ids]
        for future in futures:
            future.result()

    def finish(self, outcomes: list[Outcome]) -> None:
        """Write each job's final row and its audit row together (one logged batch per job)."""
        futures = [self.session.execute_async(self._finish_batch(o)) for o in outcomes]
        for future in futures:
            future.result()

    def _finish_batch(self, o: Outcome) -> BatchStatement:
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        hour = hour_bucket(o.finished_at)
        if o.error is not None:
            batch.add(self._prepare(FINISH_FAILED), (FAILED, o.error, o.worker, o.finished_at, o.job_id))
            batch.add(
                self._prepare(AUDIT_FAILED),
                (hour, o.finished_at, o.job_id, FAILED, o.error, o.sha256, o.filename, o.worker),
            )
        elif o.label is None:
            batch.add(
                self._prepare(FINISH_BLANK),
                (
                    DONE,
                    o.reason,
                    o.model_name,
                    o.model_version,
                    o.worker,
                    o.finished_at,
                    o.queue_ms,
                    o.inference_ms,
                    o.batch_size,
                    o.job_id,
                ),
            )
            batch.add(
                self._prepare(AUDIT_BLANK),
                (
                    hour,
                    o.finished_at,
                    o.job_id,
                    DONE,
                    o.reason,
                    o.model_name,
                    o.model_version,
                    o.sha256,
                    o.filename,
                    o.worker,
                ),
            )
        else:
            batch.add(
                self._prepare(FINISH_LABELLED),
                (
                    DONE,
                    o.label,
                    o.confidence,
                    o.probabilities,
                    o.model_name,
                    o.model_version,
                    o.worker,
                    o.finished_at,
                    o.queue_ms,
                    o.inference_ms,
                    o.batch_size,
                    o.job_id,
                ),
            )
            batch.add(
                self._prepare(AUDIT_LABELLED),
                (
                    hour,
                    o.finished_at,
                    o.job_id,
                    DONE,
                    o.label,
                    o.confidence,
                    o.model_name,
                    o.model_version,
                    o.sha256,
                    o.filename,
                    o.worker,
                ),
            )
        return batch

    def _prepare(self, cql: str):
        if cql not in self._prepared:
            self._prepared[cql] = self.session.prepare(cql)
        return self._prepared[cql]

    def _run(self, cql: str, params: tuple):
        return self.session.execute(self._prepare(cql), params)

    def _async(self, cql: str, params: tuple):
        return self.session.execute_async(self._prepare(cql), params)


# What "Cassandra is unreachable or overloaded right now" looks like from the driver.
UNAVAILABLE_ERRORS = (NoHostAvailable, DriverException, RequestExecutionException)
