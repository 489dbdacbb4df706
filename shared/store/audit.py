"""The auditor's four questions as CQL: `recog audit` asks them, docs/operations.md shows them for cqlsh.

Each reads one partition by its key, so an audit never scans the cluster.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from cassandra.cluster import Session


@dataclass(frozen=True)
class AuditQuery:
    table: str
    key: str
    columns: tuple[str, ...]

    def cql(self, keyspace: str) -> str:
        return f"SELECT {', '.join(self.columns)} FROM {keyspace}.{self.table} WHERE {self.key} = ?"


QUERIES = {
    "hour": AuditQuery(
        "predictions_by_hour",
        "hour",
        ("finished_at", "job_id", "status", "label", "confidence", "model_version", "filename", "worker"),
    ),
    "job": AuditQuery(
        "jobs",
        "job_id",
        (
            "job_id",
            "status",
            "label",
            "confidence",
            "reason",
            "error",
            "filename",
            "sha256",
            "model_name",
            "model_version",
            "batch_id",
            "cached",
            "batch_size",
            "worker",
            "created_at",
            "finished_at",
        ),
    ),
    "batch": AuditQuery(
        "batch_jobs",
        "batch_id",
        ("filename", "job_id", "status", "label", "confidence", "error", "cached", "finished_at"),
    ),
    "sha256": AuditQuery(
        "results_by_image",
        "sha256",
        ("model_name", "model_version", "job_id", "finished_at", "label", "confidence", "reason"),
    ),
}

HOUR = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_key(kind: str, text: str) -> str | uuid.UUID:
    """The partition key as Cassandra wants it; ValueError with a message a person can act on."""
    if kind in ("job", "batch"):
        try:
            return uuid.UUID(text)
        except ValueError:
            raise ValueError(
                f"expected an id like 3f2b8c1e-0d4a-4e7b-9a61-2c5d8e9f0a1b, got {text!r}"
            ) from None
    if kind == "hour" and not HOUR.match(text):
        raise ValueError(f"expected a UTC hour written YYYY-MM-DDTHH (e.g. 2026-11-21T14), got {text!r}")
    if kind == "sha256" and not SHA256.match(text.lower()):
        raise ValueError(f"expected 64 hexadecimal digits, got {text!r}")
    return text.lower() if kind == "sha256" else text


def run(session: Session, keyspace: str, kind: str, key: str | uuid.UUID) -> list[dict]:
    statement = session.prepare(QUERIES[kind].cql(keyspace))
    return [dict(row) for row in session.execute(statement, [key])]
