"""Job states, the job types both sides pass around, and time helpers for their rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
# Ended by a cancel before any model saw it (POST /v1/jobs/<id>/cancel, /v1/batches/<id>/cancel):
# final, with no result.
CANCELLED = "cancelled"
FINAL_STATES = frozenset({DONE, FAILED, CANCELLED})
# Not a stored status: what the store's status reads say of an open job whose cancel was asked for
# (shared/store/cassandra_results.look_up), so the worker that takes it up ends it cancelled.
CANCEL_ASKED = "cancel asked"


@dataclass(frozen=True)
class JobKey:
    """What locates a job's rows: its id, and for a batch job the batch, file name and the part
    of the batch it is counted in (shared/parts.py)."""

    job_id: uuid.UUID
    batch_id: uuid.UUID | None = None
    filename: str = ""
    part: uuid.UUID | None = None


@dataclass(frozen=True)
class BatchHeader:
    """What a batch's header and its tenant's listing row hold from its start."""

    batch_id: uuid.UUID
    name: str
    model_name: str
    created_at: datetime
    tenant: str | None


@dataclass
class NewJob:
    """A job as the gateway records it, before any worker saw it."""

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
    # The tenant of the API key that sent it (shared/keys.py).
    tenant: str | None = None

    def row(self) -> dict:
        """The columns the gateway writes for it, named as in the jobs table (status aside).
        Its fields are plain values: asdict() would deep-copy each, 1 % of the gateway's CPU."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def upload(self) -> dict:
        """What its row holds from the upload beyond what every task message carries."""
        return {name: getattr(self, name) for name in UPLOAD_COLUMNS}


UPLOAD_COLUMNS = ("size_bytes", "image_format", "width", "height")


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
    # When the job was created: what its queue time is measured from.
    created_at: datetime | None = None
    tenant: str | None = None
    # The job row's upload columns, the model asked for and when it started, when its gateway
    # left the whole row to the worker (shared/messaging.JobMessage.upload): written with the result.
    upload: dict | None = None
    # Cancelled before it was recognised: no result, no error, no cache row (an audit row, as for
    # every ending).
    cancelled: bool = False

    @property
    def status(self) -> str:
        return CANCELLED if self.cancelled else FAILED if self.error is not None else DONE


def seen_status(status: str, cancel_requested_at: datetime | None) -> str:
    """A job's status as a worker reads it: CANCEL_ASKED when still open with its cancel asked."""
    return CANCEL_ASKED if cancel_requested_at is not None and status not in FINAL_STATES else status


def new_job_id() -> uuid.UUID:
    return uuid.uuid4()


def parse_job_id(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except (ValueError, AttributeError):
        return None


def utcnow() -> datetime:
    # Cassandra keeps milliseconds; trimming here keeps written and read-back times equal.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def hour_bucket(moment: datetime) -> str:
    """The audit partition of a moment: 'YYYY-MM-DDTHH' in UTC, easy to type in cqlsh."""
    return as_utc(moment).strftime("%Y-%m-%dT%H")


def minute_bucket(moment: datetime) -> str:
    """The open-work partition of a moment: 'YYYY-MM-DDTHH:MM' in UTC."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M")


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return as_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; the driver hands back naive datetimes that are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
