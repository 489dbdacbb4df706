"""A batch counted in parts, so a progress poll reads a row per part instead of a line per file.

A part is up to PART_FILES files of one upload, in the order they came (the files the gateway
refused form parts of their own). The gateway writes each part's members before its total, and
both before the job rows; a worker that ends a chunk counts the part's lines again and writes the
part's counts whole, so a chunk run twice, or sent again, rewrites the same numbers instead of
adding to them. Counts are written once a chunk, not once a job: a chunk's fresh outcomes need no
read back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shared.jobs import CANCELLED, DONE, FAILED, FINAL_STATES, RUNNING, JobKey, as_utc

# Fixed, not RECOG_CHUNK_SIZE: a retry under an Idempotency-Key must cut the upload into the same
# parts even if the gateway it reaches has another chunk size. With the default chunk size a
# chunk is exactly one part, and counting it reads no line back.
PART_FILES = 64


@dataclass(frozen=True)
class Part:
    """What the gateway writes for a part: its members; refused_at when they were refused (all
    failed at once, so the gateway writes the counts too)."""

    batch_id: uuid.UUID
    part_id: uuid.UUID
    members: tuple[JobKey, ...]
    refused_at: datetime | None = None


@dataclass(frozen=True)
class PartCount:
    total: int
    running: int = 0
    done: int = 0
    failed: int = 0
    cached: int = 0
    cancelled: int = 0
    first_finished: datetime | None = None
    last_finished: datetime | None = None

    @property
    def final(self) -> int:
        return self.done + self.failed + self.cancelled


def count_lines(lines: Iterable[dict]) -> PartCount:
    """Count batch lines (status, cached, finished_at; a line never written counts as queued)."""
    total = running = done = failed = cached = cancelled = 0
    first = last = None
    for line in lines:
        total += 1
        status = line.get("status")
        running += status == RUNNING
        done += status == DONE
        failed += status == FAILED
        cancelled += status == CANCELLED
        cached += bool(line.get("cached")) and status == DONE
        finished = line.get("finished_at") if status in FINAL_STATES else None
        first, last = earlier(first, finished), later(last, finished)
    return PartCount(total, running, done, failed, cached, cancelled, first, last)


def earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    """The earlier of two moments, either may be missing. Times read back from Cassandra are naive
    UTC, those just made aware: both are compared, and returned, as aware UTC."""
    a, b = a and as_utc(a), b and as_utc(b)
    return b if a is None else a if b is None else min(a, b)


def later(a: datetime | None, b: datetime | None) -> datetime | None:
    """The later of two moments, as earlier() takes them."""
    a, b = a and as_utc(a), b and as_utc(b)
    return b if a is None else a if b is None else max(a, b)


def refused_count(part: Part) -> PartCount:
    n = len(part.members)
    return PartCount(n, failed=n, first_finished=part.refused_at, last_finished=part.refused_at)


def members_json(members: Iterable[JobKey]) -> str:
    return json.dumps([[str(k.job_id), k.filename] for k in members])


def read_members(text: str, batch_id: uuid.UUID, part_id: uuid.UUID) -> tuple[JobKey, ...]:
    return tuple(
        JobKey(uuid.UUID(job_id), batch_id, filename, part_id) for job_id, filename in json.loads(text)
    )
