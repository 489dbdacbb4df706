"""POST /v1/jobs and GET /v1/jobs/<id>: accept one image, and say where its job stands."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify, request, url_for
from kombu.exceptions import OperationalError

from gateway.errors import ApiError
from gateway.waiting import wait_for_final
from model.registry import UnknownModel, describe
from shared.cassandra_session import UNAVAILABLE_ERRORS
from shared.cassandra_store import NewJob, Outcome
from shared.decode import ImageRejected, open_image
from shared.jobs import FINAL_STATES, QUEUED, job_view, new_job_id, parse_job_id, utcnow
from shared.messaging import TASK_RECOGNISE, job_message

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")

QUEUE_DOWN = (OperationalError, redis.RedisError, OSError)


@bp.post("")
def submit():
    services = current_app.extensions["recog"]
    settings = services.settings
    wait = _wait_seconds(settings.max_wait_seconds)
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(
            400,
            "missing_file",
            "send the image in the multipart form field 'file', "
            "e.g. curl -F file=@digit.png http://HOST/v1/jobs",
        )
    data = upload.read()
    if len(data) > settings.max_upload_bytes:
        raise ApiError(
            413,
            "too_large",
            f"the file is {len(data):,} bytes; the limit is {settings.max_upload_bytes:,} bytes",
        )
    model_name = request.form.get("model") or settings.model
    try:
        describe(settings.models_dir, model_name)
        img = open_image(data, settings.max_image_pixels)
    except UnknownModel as exc:
        raise ApiError(400, "unknown_model", str(exc)) from exc
    except ImageRejected as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from exc

    job_id, created = new_job_id(), utcnow()
    filename = (upload.filename or "upload")[:255]
    sha256, new_file = services.images.put(data)
    try:
        services.store.insert_job(
            NewJob(
                job_id,
                filename,
                sha256,
                len(data),
                img.format or "",
                img.width,
                img.height,
                model_name,
                created,
            )
        )
    except UNAVAILABLE_ERRORS as exc:
        if new_file:
            services.images.delete(sha256)
        raise ApiError(
            503,
            "store_unavailable",
            "the job store (Cassandra) is not answering; nothing was kept. Retry in a little while",
        ) from exc
    try:
        services.celery.send_task(
            TASK_RECOGNISE,
            args=[job_message(job_id, sha256, filename, model_name, created)],
            task_id=str(job_id),
            queue=settings.queue,
        )
    except QUEUE_DOWN as exc:
        _fail_unqueued(services, job_id, sha256, filename, new_file)
        raise ApiError(
            503,
            "queue_unavailable",
            "the job queue (Redis) is not answering; the "
            "job was recorded as failed. Resubmit in a little while",
            job_id=str(job_id),
        ) from exc

    if wait:
        row = _wait_quietly(services, job_id, wait)
        if row is not None and row["status"] in FINAL_STATES:
            return jsonify(job_view(row)), 200
    location = url_for("jobs.show", job_id=str(job_id))
    body = {"id": str(job_id), "status": QUEUED, "links": {"self": location}}
    return jsonify(body), 202, {"Location": location}


@bp.get("/<job_id>")
def show(job_id: str):
    services = current_app.extensions["recog"]
    uid = parse_job_id(job_id)
    if uid is None:
        raise ApiError(
            400,
            "bad_job_id",
            f"{job_id!r} is not a job id; job ids are UUIDs like '0b7e4c1e-8f0a-4c7b-9a51-2d1f3c4e5a6b'",
        )
    wait = _wait_seconds(services.settings.max_wait_seconds)
    try:
        row = wait_for_final(services, uid, wait) if wait else services.store.get_job(uid)
    except UNAVAILABLE_ERRORS as exc:
        raise ApiError(
            503, "store_unavailable", "the job store (Cassandra) is not answering; retry in a little while"
        ) from exc
    if row is None:
        raise ApiError(404, "unknown_job", f"no job with id {uid}")
    return jsonify(job_view(row))


def _wait_quietly(services, job_id, wait: float) -> dict | None:
    """The job is accepted already: a failed wait answers 202 with its id, never an error."""
    try:
        return wait_for_final(services, job_id, wait)
    except UNAVAILABLE_ERRORS:
        current_app.logger.warning("job %s: accepted, but waiting for it failed", job_id)
        return None


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


def _fail_unqueued(services, job_id, sha256, filename, new_file) -> None:
    """A job that never reached the queue is failed at once, never left 'queued' forever."""
    if new_file:
        services.images.delete(sha256)
    error = "the job could not be queued (Redis was not answering); resubmit the image"
    try:
        services.store.finish([Outcome(job_id, sha256, filename, "gateway", utcnow(), error=error)])
    except UNAVAILABLE_ERRORS:
        current_app.logger.exception("job %s: could not record the queueing failure", job_id)
