"""Taking uploads in: check, store the bytes, write the rows, queue the work, in that order.

Shared by single jobs and batches. If Cassandra fails, nothing is kept; if Redis fails, the
rows written are marked failed, so no job is ever left 'queued' with nothing to run it.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import redis
from kombu.exceptions import OperationalError

from gateway.errors import STORE_DOWN, ApiError
from gateway.metrics import JOBS_ACCEPTED, JOBS_REJECTED
from model.registry import UnknownModel, describe
from shared.decode import ImageRejected, open_image
from shared.jobs import NewJob, Outcome, new_job_id
from shared.messaging import JobMessage, send_chunk, send_single_job
from shared.store import StoreUnavailable

log = logging.getLogger(__name__)

QUEUE_DOWN = (OperationalError, redis.RedisError, OSError)


@dataclass
class Intake:
    """Uploads checked and stored, not yet recorded or queued."""

    model_name: str
    created_at: datetime
    batch_id: uuid.UUID | None = None
    accepted: list[NewJob] = field(default_factory=list)
    refused: list[tuple[NewJob, str]] = field(default_factory=list)
    new_files: list[str] = field(default_factory=list)


def check_model(settings, name: str | None) -> str:
    name = name or settings.model
    try:
        describe(settings.models_dir, name)
    except UnknownModel as exc:
        raise ApiError(400, "unknown_model", str(exc)) from exc
    return name


def examine(settings, data: bytes):
    """The decoded image, or ImageRejected saying what is wrong with the bytes."""
    if len(data) > settings.max_upload_bytes:
        raise ImageRejected(
            f"the file is {len(data):,} bytes; the limit is {settings.max_upload_bytes:,} bytes",
            status=413,
            code="too_large",
        )
    return open_image(data, settings.max_image_pixels)


def take(services, intake: Intake, data: bytes, filename: str, strict: bool) -> None:
    """Store one upload. strict (single jobs): a bad image raises its 4xx; else it is refused."""
    filename = (filename or "upload")[:255]
    try:
        img = examine(services.settings, data)
    except ImageRejected as exc:
        if strict:
            raise ApiError(exc.status, exc.code, str(exc)) from exc
        JOBS_REJECTED.labels(exc.code).inc()
        sha256 = hashlib.sha256(data).hexdigest()
        intake.refused.append((_new_job(intake, filename, sha256, len(data), "", 0, 0), str(exc)))
        return
    sha256, created = services.images.put(data)
    if created:
        intake.new_files.append(sha256)
    intake.accepted.append(
        _new_job(intake, filename, sha256, len(data), img.format or "", img.width, img.height)
    )


def commit(services, intake: Intake) -> None:
    """Write the rows, then queue the work (single jobs one task each, batches in chunks)."""
    settings = services.settings
    jobs = intake.accepted + [job for job, _ in intake.refused]
    new_bytes = set(intake.new_files)
    messages = [
        JobMessage(
            j.job_id, j.sha256, j.filename, j.model_name, j.created_at, j.batch_id, j.sha256 in new_bytes
        )
        for j in intake.accepted
    ]
    try:
        services.store.insert_jobs(jobs, messages)
        services.store.finish([_failed(job, error, "gateway") for job, error in intake.refused])
    except StoreUnavailable as exc:
        discard(services, intake)
        raise ApiError(
            503, "store_unavailable", f"{STORE_DOWN}; nothing was kept. Retry in a little while"
        ) from exc
    try:
        if intake.batch_id is None:
            for message in messages:
                send_single_job(services.celery, settings, message)
        else:
            for start in range(0, len(messages), settings.chunk_size):
                send_chunk(services.celery, settings, messages[start : start + settings.chunk_size])
    except QUEUE_DOWN as exc:
        _fail_unqueued(services, intake)
        raise ApiError(
            503,
            "queue_unavailable",
            "the job queue (Redis) is not answering; the jobs were "
            "recorded as failed. Resubmit in a little while",
            job_ids=[str(j.job_id) for j in intake.accepted],
        ) from exc
    JOBS_ACCEPTED.labels("single" if intake.batch_id is None else "batch").inc(len(messages))


def discard(services, intake: Intake) -> None:
    """Remove the images this intake created (bytes another job stored stay).

    Best effort: an image left behind when the store is down is only unreferenced bytes."""
    try:
        for sha256 in intake.new_files:
            services.images.delete(sha256)
    except StoreUnavailable as exc:
        log.warning("could not remove %d images of a refused upload: %s", len(intake.new_files), exc)


def _fail_unqueued(services, intake: Intake) -> None:
    discard(services, intake)
    error = "the job could not be queued (Redis was not answering); resubmit the image"
    try:
        services.store.finish([_failed(job, error, "gateway") for job in intake.accepted])
    except StoreUnavailable:
        log.exception("could not record the queueing failure of %d jobs", len(intake.accepted))


def _new_job(intake: Intake, filename, sha256, size, fmt, width, height) -> NewJob:
    return NewJob(
        new_job_id(),
        filename,
        sha256,
        size,
        fmt,
        width,
        height,
        intake.model_name,
        intake.created_at,
        intake.batch_id,
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
    )
