"""The webhook tables: callbacks registered and still to deliver, and every try of each."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.store.session import Statements, translated

REGISTER = """INSERT INTO callbacks_pending (minute, subject, kind, url, key_id) VALUES (?, ?, ?, ?, ?)
    USING TTL ?"""
SELECT_PENDING = "SELECT subject, kind, url, key_id FROM callbacks_pending WHERE minute = ?"
SELECT_TRIES = "SELECT * FROM callbacks WHERE subject = ?"
RECORD_TRY = """INSERT INTO callbacks (subject, attempt, at, status_code, error, ms, first_at, next_at,
    delivered_at, gave_up_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
JOB_CALLBACK = "UPDATE jobs SET callback_url = ? WHERE job_id = ?"
BATCH_CALLBACK = "UPDATE batches SET callback_url = ? WHERE batch_id = ?"


@dataclass(frozen=True)
class Pending:
    subject: uuid.UUID
    kind: str  # "job" or "batch"
    url: str
    key_id: str


@dataclass(frozen=True)
class Attempt:
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    ms: int | None


@dataclass(frozen=True)
class Delivery:
    """Where one callback stands: its tries so far, in order, and what comes next."""

    attempts: tuple[Attempt, ...] = ()
    first_at: datetime | None = None
    next_at: datetime | None = None
    delivered_at: datetime | None = None
    gave_up_at: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.delivered_at is not None or self.gave_up_at is not None


class CallbackTable:
    def __init__(self, statements: Statements) -> None:
        self._cql = statements

    def register(self, pending: Pending, minute: str, ttl: int) -> None:
        """Before the job or batch can end: a notifier that finds it ended finds this too."""
        with translated():
            self._cql.run(REGISTER, (minute, pending.subject, pending.kind, pending.url, pending.key_id, ttl))

    def mark(self, kind: str, subject: uuid.UUID, url: str) -> None:
        """The URL on the job's or batch's own row, so its view knows to read the tries."""
        with translated():
            self._cql.run(JOB_CALLBACK if kind == "job" else BATCH_CALLBACK, (url, subject))

    def pending(self, minute: str) -> list[Pending]:
        with translated():
            rows = list(self._cql.run(SELECT_PENDING, (minute,)))
        return [Pending(r["subject"], r["kind"], r["url"], r["key_id"]) for r in rows]

    def delivery(self, subject: uuid.UUID) -> Delivery:
        with translated():
            rows = list(self._cql.run(SELECT_TRIES, (subject,)))
        if not rows:
            return Delivery()
        first = rows[0]
        tries = tuple(
            Attempt(r["attempt"], r["at"], r["status_code"], r["error"], r["ms"])
            for r in rows
            if r["attempt"] is not None
        )
        return Delivery(
            tries, first["first_at"], first["next_at"], first["delivered_at"], first["gave_up_at"]
        )

    def record(self, subject: uuid.UUID, attempt: Attempt, after: Delivery) -> None:
        """One try, and where the delivery stands after it, in one write."""
        with translated():
            self._cql.run(
                RECORD_TRY,
                (
                    subject,
                    attempt.attempt,
                    attempt.at,
                    attempt.status_code,
                    attempt.error,
                    attempt.ms,
                    after.first_at,
                    after.next_at,
                    after.delivered_at,
                    after.gave_up_at,
                ),
            )
