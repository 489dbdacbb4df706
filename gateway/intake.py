"""Taking uploads in: check, store the bytes, write the rows, queue the work, in that order.

Shared by single jobs and batches. If Cassandra fails, the request is refused (a job row already
written is finished by the sweeper from its open work); if Redis fails, the request is accepted
all the same and the sweeper sends the work once Redis is back. A single job whose request waits
for the answer is the exception: sent first, its row written by its worker (commit's leave_row).
Stored bytes are never deleted here: a concurrent upload of the same bytes, or open work, may
refer to them.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import BinaryIO

import redis
from kombu.exceptions import OperationalError

from gateway.errors import STORE_DOWN, ApiError
from gateway.idempotency import Claim
from gateway.metrics import JOBS_ACCEPTED, JOBS_REJECTED, QUEUED_LATER
from model.registry import UnknownModel, available, describe
from shared.decode import ImageRejected, open_image
from shared.jobs import JobKey, NewJob, Outcome, new_job_id, utcnow
from shared.messaging import JobMessage, Work, send_work
from shared.parts import PART_FILES, Part
from shared.store import StoreUnavailable

log = logging.getLogger(__name__)

QUEUE_DOWN = (OperationalError, redis.RedisError, OSError)
# The worker column of a file refused at upload: never recognised, and its bytes never stored.
REFUSED_AT_UPLOAD = "gateway"
PIECE_BYTES = 1024 * 1024


@dataclass
class Intake:
    """Uploads checked and stored, not yet recorded or queued."""

    model_name: str
    created_at: datetime
    batch_id: uuid.UUID | None = None
    tenant: str | None = None
    accepted: list[NewJob] = field(default_factory=list)
    refused: list[tuple[NewJob, str]] = field(default_factory=list)
    new_files: set[str] = field(default_factory=set)
    # Every upload is stored without an fsync of its own, and made durable (all together) before
    # the gateway writes a row naming it: in _record, or in gateway/jobs.py's _record_waited for a
    # waited-for job whose wait ran out. An answered waited-for job's bytes never are: its worker
    # wrote its row, with its result (0.25 ms of the gateway's CPU a job saved).
    not_durable: set[str] = field(default_factory=set)
    # With an Idempotency-Key: job ids derived from its seed, and the jobs an earlier attempt
    # recorded for good.
    claim: Claim | None = None
    recorded: set[uuid.UUID] = field(default_factory=set)

    def next_job_id(self) -> uuid.UUID:
        if self.claim is None:
            return new_job_id()
        return self.claim.id_for(f"file {len(self.accepted) + len(self.refused)}")

    def part_id(self, name: str) -> uuid.UUID:
        """A retry under the same key names the same parts, so it rewrites them, never adds."""
        return uuid.uuid4() if self.claim is None else self.claim.id_for(name)

    @property
    def files(self) -> int:
        return len(self.accepted) + len(self.refused)


# The models on disk, listed again after this many seconds: a request costs no listing of the
# models folder (3.5 % of the gateway's CPU at 32 clients). A name not listed is looked for at
# once, so a model just added is taken; one just removed fails its jobs at the worker instead.
MODEL_NAMES_SECONDS = 5.0
_model_names: dict = {}  # models folder: (when listed, names)


def check_model(settings, name: str | None) -> str:
    name = name or settings.model
    listed_at, names = _model_names.get(settings.models_dir, (float("-inf"), frozenset()))
    if name in names and time.monotonic() - listed_at < MODEL_NAMES_SECONDS:
        return name
    names = frozenset(available(settings.models_dir))
    _model_names[settings.models_dir] = (time.monotonic(), names)
    if name not in names:
        try:
            describe(settings.models_dir, name)  # raises UnknownModel, its message naming the models
        except UnknownModel as exc:
            raise ApiError(400, "unknown_model", str(exc)) from exc
    return name


def too_large(size: int, limit: int) -> ImageRejected:
    return ImageRejected(
        f"the file is {size:,} bytes; the limit is {limit:,} bytes", status=413, code="too_large"
    )


def examine(settings, data: bytes, decode: bool = True):
    """The image (decoded, or with decode=False its header read), or ImageRejected saying what is
    wrong with the bytes."""
    if len(data) > settings.max_upload_bytes:
        raise too_large(len(data), settings.max_upload_bytes)
    return open_image(data, settings.max_image_pixels, decode)


def take(services, intake: Intake, data: bytes, filename: str, strict: bool) -> None:
    """Store one upload, unsynced (intake.not_durable). strict (single jobs): decoded now, and a
    bad image raises its 4xx. Else (a batch's files) only the header is checked and a bad one
    refused: a file damaged past its header fails as its job, in the worker, which decodes it
    anyway (once, not twice)."""
    try:
        img = examine(services.settings, data, decode=strict)
    except ImageRejected as exc:
        if strict:
            raise ApiError(exc.status, exc.code, str(exc)) from exc
        _refuse(intake, filename, hashlib.sha256(data).hexdigest(), len(data), exc)
        return
    sha256, created = services.images.put(data, durable=False)
    if created:
        intake.new_files.add(sha256)
    intake.not_durable.add(sha256)
    intake.accepted.append(
        _new_job(intake, filename, sha256, len(data), img.format or "", img.width, img.height)
    )


def take_part(services, intake: Intake, stream: BinaryIO, filename: str) -> None:
    """One file part of a batch: a bulk request may carry hundreds of megabytes in one part, so
    at most the upload limit is read into memory; a bigger part is refused from its size and a
    hash read in pieces."""
    limit = services.settings.max_upload_bytes
    data = stream.read(limit + 1)
    if len(data) <= limit:
        take(services, intake, data, filename, strict=False)
        return
    digest, size = hashlib.sha256(data), len(data)
    del data
    while piece := stream.read(PIECE_BYTES):
        digest.update(piece)
        size += len(piece)
    _refuse(intake, filename, digest.hexdigest(), size, too_large(size, limit))


def _refuse(intake: Intake, filename: str, sha256: str, size: int, exc: ImageRejected) -> None:
    JOBS_REJECTED.labels(exc.code).inc()
    intake.refused.append((_new_job(intake, filename, sha256, size, "", 0, 0), str(exc)))


def commit(services, intake: Intake, leave_row: bool = False) -> Work | None:
    """Write the rows, then queue the work (single jobs one task each, batches in chunks), within
    the tenant's cap on queued images.

    leave_row (a single job whose request waits for its answer): no row is written. The job is
    queued carrying its upload columns and its worker writes the whole row with the result: no
    Cassandra round trip before the answer, and no 'running' mark, which nobody reads (the id is
    not known outside until an answer gives it). Returns that job's work, for
    record_waited should the wait run out first. If Redis refuses the task, the rows are written
    as for any job, and the sweeper sends it.
    """
    settings = services.settings
    # Stamped now, not when the request began: a long upload must not write work that already
    # looks old to the sweeper, nor into a minute it may have settled.
    work, parts = plan_work(intake, settings.chunk_size, utcnow())
    fresh = [job for job in intake.accepted if job.job_id not in intake.recorded]
    refused = [
        (job, _failed(job, error, REFUSED_AT_UPLOAD))
        for job, error in intake.refused
        if job.job_id not in intake.recorded
    ]
    # Counted as queued from here, before anything is sent.
    services.quotas.admit(intake.tenant, [job.job_id for job in fresh], single=intake.batch_id is None)
    left = leave_row and intake.batch_id is None and len(fresh) == len(work) == 1
    if left and _sent_without_row(services, work[0], fresh[0]):
        JOBS_ACCEPTED.labels("single").inc()
        return work[0]  # as record_waited writes it: without the upload columns, the row has them
    try:
        _record(services, intake, fresh, work, refused, parts)
    except Exception:  # a 503, or a failure of the disk or the store's: not accepted after all
        services.quotas.not_queued(intake.tenant, [job.job_id for job in fresh])
        raise
    if left:
        QUEUED_LATER.inc()  # Redis refused it above: the sweeper sends it
    elif not send_or_leave(services, work, f"{len(fresh)} jobs'"):
        QUEUED_LATER.inc(len(fresh))
    JOBS_ACCEPTED.labels("single" if intake.batch_id is None else "batch").inc(len(fresh))
    return None


def send_or_leave(services, work: Sequence[Work], whose: str) -> bool:
    """Send the work's task messages; False if Redis refused them. Accepted all the same: the work
    is recorded, and the workers' sweeper sends what was not queued once Redis answers again
    (within a lease and a sweep, about 45 s)."""
    try:
        for unit in work:
            send_work(services.celery, services.settings, unit)
    except QUEUE_DOWN as exc:
        log.warning("Redis refused %s task messages; the sweeper will send them: %s", whose, exc)
        return False
    return True


def stored_rows(store, job_ids: Sequence[uuid.UUID]) -> list[dict]:
    """The rows, in this order, of the jobs whose image was stored: a file refused at upload never
    was (and a row without its image's name, partly expired, no longer says which)."""
    rows = store.job_rows(job_ids) if job_ids else {}
    return [
        rows[j]
        for j in job_ids
        if j in rows and rows[j].get("worker") != REFUSED_AT_UPLOAD and rows[j].get("sha256")
    ]


def _sent_without_row(services, unit: Work, job: NewJob) -> bool:
    """The job's task, carrying its upload columns for the worker to write; False if Redis
    refused it."""
    message = replace(unit.messages[0], upload=job.upload())
    try:
        send_work(services.celery, services.settings, replace(unit, messages=(message,)))
    except QUEUE_DOWN as exc:
        log.warning("Redis refused a waited-for job's task message; recording it for the sweeper: %s", exc)
        return False
    return True


def _record(services, intake: Intake, fresh, work, refused, parts) -> None:
    if intake.not_durable:
        # Before any row names them: a job whose bytes a crash lost could never be recognised.
        services.images.make_durable(intake.not_durable)
    try:
        services.store.insert_jobs(fresh, work, refused, parts)
    except StoreUnavailable as exc:
        raise ApiError(
            503, "store_unavailable", f"{STORE_DOWN}; nothing was accepted. Retry in a little while"
        ) from exc


def plan_work(intake: Intake, chunk_size: int, sent_at: datetime) -> tuple[list[Work], list[Part]]:
    """The task messages, one per single job (its work id is the job id) or one per chunk of a
    batch, and a batch's parts (shared/parts.py).

    Parts hold every file of the upload, in the order it came, also those an earlier attempt under
    the same key recorded, so a retry writes the same parts again; its work holds only the rest.
    """
    if intake.batch_id is None:
        return [Work(m.job_id, (m,), False, sent_at) for m in _messages(intake, intake.accepted, {})], []
    parts = _parts(intake, intake.accepted, "part")
    refused = _parts(intake, [job for job, _ in intake.refused], "refused part", intake.created_at)
    part_of = {key.job_id: part.part_id for part in parts for key in part.members}
    messages = _messages(intake, intake.accepted, part_of)
    work = [
        Work(uuid.uuid4(), messages[start : start + chunk_size], True, sent_at)
        for start in range(0, len(messages), chunk_size)
    ]
    return work, parts + refused


def _parts(intake: Intake, jobs: list[NewJob], name: str, refused_at: datetime | None = None) -> list[Part]:
    parts = []
    for n, start in enumerate(range(0, len(jobs), PART_FILES)):
        part_id = intake.part_id(f"{name} {n}")
        members = tuple(
            JobKey(j.job_id, j.batch_id, j.filename, part_id) for j in jobs[start : start + PART_FILES]
        )
        parts.append(Part(intake.batch_id, part_id, members, refused_at))
    return parts


def _messages(intake: Intake, jobs: list[NewJob], part_of: dict) -> tuple[JobMessage, ...]:
    return tuple(
        JobMessage(
            j.job_id,
            j.sha256,
            j.filename,
            j.model_name,
            j.created_at,
            j.batch_id,
            j.sha256 in intake.new_files,
            part=part_of.get(j.job_id),
            tenant=j.tenant,
        )
        for j in jobs
        if j.job_id not in intake.recorded
    )


def _new_job(intake: Intake, filename, sha256, size, fmt, width, height) -> NewJob:
    return NewJob(
        intake.next_job_id(),
        (filename or "upload")[:255],
        sha256,
        size,
        fmt,
        width,
        height,
        intake.model_name,
        intake.created_at,
        intake.batch_id,
        intake.tenant,
    )


def _failed(job: NewJob, error: str, worker: str) -> Outcome:
    return Outcome(
        job.job_id,
        job.sha256,
        job.filename,
        worker,
        job.created_at,
        error=error,
        batch_id=job.batch_id,
        created_at=job.created_at,
        tenant=job.tenant,
    )
