"""Idempotency-Key on uploads: a client that retries after a lost answer gets the first answer,
never a second job.

A request takes its key up first (a lightweight transaction, so of two requests under one key at
once only one goes on; the other is told to retry). The key's row, kept RECOG_IDEMPOTENCY_HOURS,
holds a random seed that every job id (and a new batch's id) of the upload derives from, so a
retry can only write the rows the first attempt did; a key used again after its row expired gets
a new seed and new ids. The row also holds a fingerprint of what was uploaded (the same key with
other files is refused) and, once the upload is recorded, the answer it got. A retry after a
first attempt that failed half-way records what that attempt did not: jobs a worker took up or
finished are left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import request

from gateway.errors import ApiError
from gateway.metrics import UPLOADS_IN_PROGRESS, UPLOADS_REPLAYED
from shared.jobs import DONE, FAILED, RUNNING, UNRECORDED, utcnow
from shared.store import StoreUnavailable

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
# Visible ASCII only, as a UUID or any token a client makes would be: it is stored as sent.
KEY_FORMAT = re.compile(r"[\x21-\x7e]{1,255}")
# A key taken up this recently, with no answer yet, is an upload still being recorded: a request
# under it is asked to retry (409). Older, its request died (a gateway SIGKILLed mid-upload) and
# the retry takes over. A request that fails on its own (a 4xx, a 503, its client gone) frees its
# key at once. Recording even 1,000 files takes a few seconds here; were one to take longer and
# its client retry meanwhile, both would write the same ids (one job each, perhaps recognised
# twice), which is why this is not shorter.
IN_PROGRESS = timedelta(seconds=10)
FREED = datetime(1970, 1, 1)


@dataclass
class Claim:
    """A key this request has taken up: the seed of its ids, and its row as an earlier request
    left it (None if this request is the first)."""

    scope: str
    key: str
    seed: uuid.UUID
    earlier: dict | None
    claimed_at: datetime
    fingerprint: str = ""

    def id_for(self, name: str) -> uuid.UUID:
        return uuid.uuid5(self.seed, name)


def upload_key() -> str | None:
    """The request's Idempotency-Key, checked before any of its body is read."""
    key = request.headers.get(HEADER)
    if key is not None and not KEY_FORMAT.fullmatch(key):
        raise ApiError(
            400,
            "bad_idempotency_key",
            f"{HEADER} must be 1 to 255 visible ASCII characters, no spaces (a UUID is a good key)",
        )
    return key


def claim(services, scope: str, key: str) -> Claim:
    store, now = services.store, utcnow()
    seed = uuid.uuid4()
    row = store.claim_upload(scope, key, seed, now, _ttl(services))
    if row is None:
        return Claim(scope, key, seed, None, now)
    if row["answer"] is None:
        was = row["claimed_at"]
        if now.replace(tzinfo=None) - was.replace(tzinfo=None) < IN_PROGRESS or not store.reclaim_upload(
            scope, key, was, now
        ):
            UPLOADS_IN_PROGRESS.inc()
            raise ApiError(
                409,
                "upload_in_progress",
                f"an upload under this {HEADER} is still being recorded; retry in a few seconds "
                "and you get its answer",
            )
    return Claim(scope, key, row["seed"], row, now)


@contextmanager
def claimed(services, scope: str, key: str | None) -> Iterator[Claim | None]:
    """The key taken up for the request's work, and freed if that work fails."""
    if key is None:
        yield None
        return
    taken = claim(services, scope, key)
    try:
        yield taken
    except BaseException:
        free(services, taken)
        raise


def free(services, claim: Claim) -> None:
    """This request failed: a retry under its key may take it up at once. Best effort."""
    try:
        services.store.reclaim_upload(claim.scope, claim.key, claim.claimed_at, FREED)
    except StoreUnavailable as exc:
        log.warning("could not free an %s after a failed upload (a retry waits): %s", HEADER, exc)


def fingerprint(intake, name: str = "") -> str:
    """What was uploaded: the model, the batch's name, every file's name and bytes, in order."""
    digest = hashlib.sha256(json.dumps([intake.model_name, name]).encode())
    for job in [*intake.accepted, *(job for job, _ in intake.refused)]:
        digest.update(json.dumps([job.filename, job.sha256]).encode())
    return digest.hexdigest()


def earlier_answer(services, claim: Claim, intake, name: str = "") -> dict | None:
    """The first answer under this key, if its upload was recorded. Otherwise None: the upload
    is to be recorded now, with what an earlier attempt recorded left out of intake."""
    stamp = claim.fingerprint = fingerprint(intake, name)
    earlier = claim.earlier or {}
    if earlier.get("fingerprint") not in (None, stamp):
        hours = services.settings.idempotency_hours
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"this {HEADER} came with other files (or another name or model) within the last "
            f"{hours} hours; send a new key with every new upload, and the same key only to retry one",
        )
    if earlier.get("answer"):
        UPLOADS_REPLAYED.inc()
        return json.loads(earlier["answer"])
    if claim.earlier is not None:
        intake.recorded.update(_recorded(services.store, intake))
    services.store.remember_upload(claim.scope, claim.key, stamp, None, _ttl(services))
    return None


def remember_answer(services, claim: Claim, answer: dict) -> None:
    """Best effort: the upload is recorded already, and a retry that finds no answer finds its
    jobs instead."""
    try:
        services.store.remember_upload(
            claim.scope, claim.key, claim.fingerprint, json.dumps(answer), _ttl(services)
        )
    except StoreUnavailable as exc:
        log.warning("upload recorded, its %s answer not (a retry finds the jobs): %s", HEADER, exc)


def _recorded(store, intake) -> set[uuid.UUID]:
    """Of this upload's jobs, those an earlier attempt recorded for good: a refused file's failed
    row; an accepted job a worker took up or finished, unless it failed it for want of a row. A
    job still queued is written again, batch line and all (its line may be what was missing)."""
    refused = [job.job_id for job, _ in intake.refused]
    statuses, _ = store.look_up([job.job_id for job in intake.accepted] + refused, [])
    recorded = {job_id for job_id in refused if job_id in statuses}
    for job in intake.accepted:
        status = statuses.get(job.job_id)
        if status in (RUNNING, DONE) or (
            status == FAILED and (store.get_job(job.job_id) or {}).get("error") != UNRECORDED
        ):
            recorded.add(job.job_id)
    return recorded


def _ttl(services) -> int:
    return services.settings.idempotency_hours * 3600
