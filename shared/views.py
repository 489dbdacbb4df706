"""The API's JSON shapes of stored rows: a job, and one line of a batch's results."""

from __future__ import annotations

from shared.jobs import iso

# The columns of a batch's CSV, in order; its JSON carries finished_at as well.
RESULT_COLUMNS = ("file", "status", "label", "confidence", "reason", "error", "cached", "job_id")


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
        "cancel_requested_at": iso(row.get("cancel_requested_at")),
    }


def batch_line_view(row: dict) -> dict:
    """One job of a batch, as its results list it."""
    return {
        "file": row["filename"],
        "status": row["status"],
        "label": row["label"],
        "confidence": row["confidence"],
        "reason": row["reason"],
        "error": row["error"],
        "cached": bool(row["cached"]),
        "job_id": str(row["job_id"]),
        "finished_at": iso(row["finished_at"]),
    }
