"""POST /v1/jobs and GET /v1/jobs/<id>: accept one image, and say where its job stands."""

from __future__ import annotations

import uuid
from dataclasses import replace

from flask import Blueprint, current_app, jsonify, request, url_for

from gateway import callbacks
from gateway.auth import caller
from gateway.errors import STORE_DOWN, ApiError
from gateway.idempotency import claimed, earlier_answer, remember_answer, upload_key
from gateway.intake import Intake, check_model, commit, take
from gateway.waiting import JobWatch, wait_for_final
from shared.jobs import FINAL_STATES, QUEUED, NewJob, parse_job_id, utcnow
from shared.messaging import Work
from shared.store import StoreUnavailable
from shared.views import job_view

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")


@bp.post("")
def submit():
    services = current_app.extensions["recog"]
    settings = services.settings
    wait = _wait_seconds(settings.max_wait_seconds)
    key = upload_key()
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(
            400,
            "missing_file",
            "send the image in the multipart form field 'file', "
            "e.g. curl -F file=@digit.png http://HOST/v1/jobs",
        )
    tenant = caller().tenant
    watch = left = None
    try:
        with claimed(services, f"{tenant}/jobs", key) as claim:
            model = check_model(settings, request.form.get("model"))
            callback_url = callbacks.asked_for(services)
            intake = Intake(model, utcnow(), tenant=tenant, claim=claim)
            take(services, intake, upload.read(), upload.filename, strict=True)
            job = intake.accepted[0]
            location = url_for("jobs.show", job_id=str(job.job_id))
            body = {"id": str(job.job_id), "status": QUEUED, "links": {"self": location}}
            if claim is None or earlier_answer(services, claim, intake) is None:
                # Before the job is queued, its announcement cannot come first. (Recorded by an
                # earlier attempt under the key, it may be final already: its row is read.)
                if wait and job.job_id not in intake.recorded:
                    watch = JobWatch(services.redis, job.job_id)
                callbacks.register(services, "job", job.job_id, callback_url)
                # Under an Idempotency-Key the rows come first, as a retry reads them; so does a
                # job's with a callback, which its row names.
                leave_row = watch is not None and claim is None and callback_url is None
                left = commit(services, intake, leave_row=leave_row)
                callbacks.mark(services, "job", job.job_id, callback_url)
                if claim is not None:
                    remember_answer(services, claim, body)
        if wait:
            row = _wait_quietly(services, job, watch, wait)
            if left is not None and (row is None or row["status"] not in FINAL_STATES):
                row = _record_waited(services, job, left)
            if row is not None and row["status"] in FINAL_STATES:
                if claim is not None:  # perhaps an earlier attempt's job: its callback as stored
                    return jsonify(_view(services, services.store.get_job(job.job_id) or row)), 200
                # From the answer, not the store: its callback cannot have been tried yet.
                return jsonify({**job_view(row), "callback": callbacks.not_tried(callback_url)}), 200
        return jsonify(body), 202, {"Location": location}
    finally:
        if watch is not None:
            watch.close()


@bp.get("/<job_id>")
def show(job_id: str):
    services = current_app.extensions["recog"]
    uid = _job_id(job_id)
    wait = _wait_seconds(services.settings.max_wait_seconds)
    row = _job_or_404(services, uid)
    if wait and row["status"] not in FINAL_STATES:
        row = wait_for_final(services, uid, wait) or row
    return jsonify(_view(services, row))


@bp.post("/<job_id>/cancel")
def cancel(job_id: str):
    """Asks for the job's cancel: the worker that takes it up ends it 'cancelled' instead of
    recognising it; one already running finishes. Asked twice, the first ask stands."""
    services = current_app.extensions["recog"]
    row = _job_or_404(services, _job_id(job_id))
    if row["status"] in FINAL_STATES:
        raise ApiError(
            409,
            "already_final",
            f"job {row['job_id']} has ended ({row['status']}): there is nothing left to cancel",
        )
    if row.get("cancel_requested_at") is None:
        at = utcnow()
        services.store.cancel_job(row, at)
        row = {**row, "cancel_requested_at": at}
        # It no longer counts against the tenant's queued images (its worker would take it off
        # only once it reaches it; a whole batch's jobs are taken off that way).
        services.quotas.not_queued(row.get("tenant") or None, [row["job_id"]])
    return jsonify(_view(services, row))


def _view(services, row: dict) -> dict:
    return {**job_view(row), "callback": callbacks.view(services, row)}


def _job_id(text: str) -> uuid.UUID:
    uid = parse_job_id(text)
    if uid is None:
        raise ApiError(
            400,
            "bad_job_id",
            f"{text!r} is not a job id; job ids are UUIDs like '0b7e4c1e-8f0a-4c7b-9a51-2d1f3c4e5a6b'",
        )
    return uid


def _job_or_404(services, uid: uuid.UUID) -> dict:
    row = services.store.get_job(uid)
    if not caller().sees(row):
        raise ApiError(404, "unknown_job", f"no job with id {uid}")
    return row


def _wait_quietly(services, job: NewJob, watch: JobWatch | None, wait: float) -> dict | None:
    """The job is accepted already: a failed wait answers 202 with its id, never an error.
    watch: subscribed before this request queued the job, whose row is then known without a read;
    None when an earlier request under the same Idempotency-Key recorded it."""
    try:
        if watch is None:
            return wait_for_final(services, job.job_id, wait)
        return watch.until_final(services, {**job.row(), "status": QUEUED}, wait)
    except StoreUnavailable:
        current_app.logger.warning("job %s: accepted, but waiting for it failed", job.job_id)
        return None


def _record_waited(services, job: NewJob, work: Work) -> dict | None:
    """The wait ran out before the worker wrote the job's row: the job is recorded now, as any
    other job is, so the sweeper can send it again if need be, then read once more (its worker
    may have finished meanwhile)."""
    services.images.make_durable({job.sha256})  # before a row names it, as for any job
    try:
        # Stamped now: the minute it was sent in may be one the sweeper has settled since.
        services.store.record_waited(job, replace(work, sent_at=utcnow()))
    except StoreUnavailable as exc:
        raise ApiError(
            503,
            "store_unavailable",
            f"{STORE_DOWN}, and the job could not be recorded: no result came within the wait. "
            "It may still be recognised, but under no id you were given: send the image again",
        ) from exc
    try:
        return services.store.get_job(job.job_id)
    except StoreUnavailable:
        return None  # recorded: the caller answers 202


def _wait_seconds(limit: float) -> float:
    raw = request.args.get("wait")
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= limit:
        raise ApiError(
            400, "bad_wait", f"wait must be a number of seconds above 0 and at most {limit:g}; got {raw!r}"
        )
    return seconds
