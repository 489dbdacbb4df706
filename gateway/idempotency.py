"""Idempotency-Key on uploads: a client that retries after a lost answer gets the first answer,
never a second job.

A request takes its key up first (a lightweight transaction, so of two requests under one key at
once only one goes on; the other is told to retry). The key's row, kept RECOG_IDEMPOTENCY_HOURS,
holds a random seed that every job id (and a new batch's id) of the upload derives from, so a
retry can only write the rows the first attempt did; a key used again after its row expired gets
a new seed and new ids. The row also holds a fingerprint of what was uploaded (the same key with
other files is refused) and, once the upload is recorded, the answer it got. A retry after a
first attempt that failed half-way records what that attempt did not: jobs it recorded are left
alone.
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
from shared.jobs import utcnow
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
    """A key this request holds: its row as this request wrote it (seed, claimed_at, fingerprint,
    answer), and whether an earlier request had the key first."""

    scope: str
    key: str
    row: dict
    earlier: bool

    @property
    def seed(self) -> uuid.UUID:
        return self.row["seed"]

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
    now = utcnow()
    fresh = {"seed": uuid.uuid4(), "claimed_at": now, "fingerprint": None, "answer": None}
    row = services.store.claim_upload(scope, key, fresh["seed"], now, _ttl(services))
    if row is None:
        return Claim(scope, key, fresh, earlier=False)
    row = {name: row[name] for name in fresh}
    if row["answer"] is None:
        was = row["claimed_at"]
        held = _naive(now) - _naive(was) < IN_PROGRESS
        if held or not _write(services, scope, key, was, row, claimed_at=now):
            UPLOADS_IN_PROGRESS.inc()
            raise _in_progress()
        row["claimed_at"] = now
    return Claim(scope, key, row, earlier=True)


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
    if claim.row["answer"] is not None:
        return  # answered: nothing held
    try:
        _write(services, claim.scope, claim.key, claim.row["claimed_at"], claim.row, claimed_at=FREED)
    except StoreUnavailable as exc:
        log.warning("could not free an %s after a failed upload (a retry waits 10 s): %s", HEADER, exc)


def fingerprint(intake, name: str = "") -> str:
    """What was uploaded: the model, the batch's name, every file's name and bytes, in order."""
    digest = hashlib.sha256(json.dumps([intake.model_name, name]).encode())
    for job in [*intake.accepted, *(job for job, _ in intake.refused)]:
        digest.update(json.dumps([job.filename, job.sha256]).encode())
    return digest.hexdigest()


def earlier_answer(services, claim: Claim, intake, name: str = "") -> dict | None:
    """The first answer under this key, if its upload was recorded. Otherwise None: the upload
    is to be recorded now, with what an earlier attempt recorded left out of intake."""
    stamp = fingerprint(intake, name)
    if claim.row["fingerprint"] not in (None, stamp):
        hours = services.settings.idempotency_hours
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"this {HEADER} came with other files (or another name or model) within the last "
            f"{hours} hours; send a new key with every new upload, and the same key only to retry one",
        )
    if claim.row["answer"] is not None:
        UPLOADS_REPLAYED.inc()
        return json.loads(claim.row["answer"])
    if claim.earlier:
        intake.recorded.update(_recorded(services.store, intake))
    if not _write(services, claim.scope, claim.key, claim.row["claimed_at"], claim.row, fingerprint=stamp):
        raise _in_progress()  # held so long that a retry took it over: that one records it
    claim.row["fingerprint"] = stamp
    return None


def remember_answer(services, claim: Claim, answer: dict) -> None:
    """Best effort: the upload is recorded already, and a retry that finds no answer finds its
    jobs instead."""
    text = json.dumps(answer)
    try:
        _write(services, claim.scope, claim.key, claim.row["claimed_at"], claim.row, answer=text)
    except StoreUnavailable as exc:
        log.warning("upload recorded, its %s answer not (a retry finds the jobs): %s", HEADER, exc)
        return
    claim.row["answer"] = text


def _write(services, scope: str, key: str, was: datetime, row: dict, **changes) -> bool:
    return services.store.update_upload(scope, key, was, {**row, **changes}, _ttl(services))


def _in_progress() -> ApiError:
    return ApiError(
        409,
        "upload_in_progress",
        f"an upload under this {HEADER} is still being recorded; retry in a few seconds and you "
        "get its answer",
    )


def _recorded(store, intake) -> set[uuid.UUID]:
    """Of this upload's jobs, those an earlier attempt recorded: any with a row. Its work was
    recorded before its row, so the sweeper sends whatever of it never reached a worker; writing
    the row again could take a job a worker has under way back to queued. (A batch job whose line
    was lost with that attempt gets its line when it finishes; a job failed "not completely
    recorded" stays failed, and says to submit the image again.)"""
    ids = [job.job_id for job in intake.accepted] + [job.job_id for job, _ in intake.refused]
    statuses, _ = store.look_up(ids, [])
    return set(statuses)


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def _ttl(services) -> int:
    return services.settings.idempotency_hours * 3600
