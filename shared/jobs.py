"""Job states and the shape of a job as the API shows it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
FINAL_STATES = frozenset({DONE, FAILED})


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


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return as_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; the driver hands back naive datetimes that are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def job_view(row: dict) -> dict:
    """The public JSON of one job row."""
    return {
        "id": str(row["job_id"]),
        "status": row["status"],
        "label": row.get("label"),
        "confidence": row.get("confidence"),
        "probabilities": list(row.get("probabilities") or []),
        "reason": row.get("reason"),
        "error": row.get("error"),
        "model": {"name": row.get("model_name"), "version": row.get("model_version")},
        "file": {
            "name": row.get("filename"),
            "sha256": row.get("sha256"),
            "bytes": row.get("size_bytes"),
            "format": row.get("image_format"),
            "width": row.get("width"),
            "height": row.get("height"),
        },
        "created_at": iso(row.get("created_at")),
        "started_at": iso(row.get("started_at")),
        "finished_at": iso(row.get("finished_at")),
        "queue_ms": row.get("queue_ms"),
        "inference_ms": row.get("inference_ms"),
        "batch_size": row.get("batch_size"),
        "cached": bool(row.get("cached")),
        "batch_id": str(row["batch_id"]) if row.get("batch_id") else None,
        "worker": row.get("worker"),
    }
