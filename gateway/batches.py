"""Bulk jobs: POST /v1/batches (many files or one zip), progress, and streamed results."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context, url_for

from gateway import callbacks
from gateway.archives import read_zip
from gateway.auth import caller
from gateway.errors import ApiError, batch_full, too_many_files
from gateway.idempotency import claimed, earlier_answer, remember_answer, upload_key
from gateway.intake import Intake, check_model, commit, plan_work, take, take_part
from gateway.retry import requeue_failed
from shared.batch_progress import BATCH_FINAL, batch_counts, batch_progress
from shared.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    BatchHeader,
    as_utc,
    iso,
    parse_job_id,
    utcnow,
)
from shared.views import RESULT_COLUMNS, batch_line_view

bp = Blueprint("batches", __name__, url_prefix="/v1/batches")
# What a batch's line can say ('running' only in batches made before parts counted it so).
LINE_STATUSES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)


@bp.before_request
def _allow_bulk_bodies():
    settings = current_app.extensions["recog"].settings
    request.max_content_length = settings.max_batch_upload_bytes
    request.max_form_parts = settings.max_files_per_request + 16


@bp.post("")
def create():
    services = current_app.extensions["recog"]
    key = upload_key()
    name = request.form.get("name", "")[:200]
    tenant = caller().tenant
    with claimed(services, f"{tenant}/batches", key) as claim:
        batch_id = claim.id_for("batch") if claim else uuid.uuid4()
        model = check_model(services.settings, request.form.get("model"))
        callback_url = callbacks.asked_for(services)
        intake = Intake(model, utcnow(), batch_id, tenant, claim=claim)
        skipped = _take_uploads(services, intake)
        if claim is not None and (earlier := earlier_answer(services, claim, intake, name)) is not None:
            return _answer(earlier)
        _check_room(services.settings, intake, held=0)
        # A retry after a first attempt that failed half-way keeps the header it may have written.
        if claim is None or not claim.earlier or services.store.get_batch(batch_id) is None:
            services.store.insert_batch(
                BatchHeader(batch_id, name, intake.model_name, intake.created_at, tenant)
            )
        callbacks.register(services, "batch", batch_id, callback_url)
        callbacks.mark(services, "batch", batch_id, callback_url)
        return _record(services, intake, skipped, name)


@bp.post("/<batch_id>/files")
def add_files(batch_id: str):
    """More files for an open batch: how the CLI uploads a big folder in chunks."""
    services = current_app.extensions["recog"]
    key = upload_key()
    header = batch_or_404(services, batch_id)
    if key is None:
        _check_open(header)  # before the body is read; a keyed retry may still get its first answer
    request.files  # noqa: B018 - the body is read before the key is taken up, not while it is held
    with claimed(services, f"batch:{header['batch_id']}", key) as claim:
        intake = Intake(header["model_name"], utcnow(), header["batch_id"], header["tenant"], claim=claim)
        skipped = _take_uploads(services, intake)
        if claim is not None and (earlier := earlier_answer(services, claim, intake)) is not None:
            return _answer(earlier)
        _check_open(header)
        _check_room(services.settings, intake, _files_held(services, header, intake))
        return _record(services, intake, skipped, header["name"])


def _record(services, intake: Intake, skipped: list[dict], name: str):
    commit(services, intake)
    body = _accepted_body(intake, skipped, name)
    if intake.claim is not None:
        remember_answer(services, intake.claim, body)
    return _answer(body)


def _view(services, header: dict, counts=None) -> dict:
    """A batch's progress, and its callback's tries."""
    counts = batch_counts(services.store, header).values() if counts is None else counts
    return {**batch_progress(header, counts, utcnow()), "callback": callbacks.view(services, header)}


def _answer(body: dict):
    """202 with the upload's answer: just recorded, or the one a first attempt got (it may have
    been lost on its way)."""
    return jsonify(body), 202, {"Location": body["links"]["self"]}


@bp.post("/<batch_id>/close")
def close(batch_id: str):
    """No more files: an upload to a closed batch gets 409. Closing twice is harmless."""
    services = current_app.extensions["recog"]
    header = batch_or_404(services, batch_id)
    services.store.close_batch(header["batch_id"])
    header = {**header, "closed": True}
    return jsonify(_view(services, header))


@bp.post("/<batch_id>/cancel")
def cancel(batch_id: str):
    """Asks for the batch's cancel and closes it: workers end its open jobs 'cancelled' as they
    reach them, and an image already in a model call finishes. Asked twice, the first ask stands."""
    services = current_app.extensions["recog"]
    header = batch_or_404(services, batch_id)
    counts = batch_counts(services.store, header).values()
    progress = batch_progress(header, counts, utcnow())
    if progress["status"] in BATCH_FINAL:
        raise ApiError(
            409,
            "already_final",
            f"batch {header['batch_id']} has ended ({progress['status']}): there is nothing left to "
            "cancel; its results stay as they are",
        )
    if header.get("cancel_requested_at") is None:
        at = utcnow()
        services.store.cancel_batch(header["batch_id"], at)
        header = {**header, "cancel_requested_at": at, "closed": True}
    return jsonify(_view(services, header, counts))


@bp.post("/<batch_id>/retry")
def retry(batch_id: str):
    """The batch's failed jobs queued again, under the same ids; files refused at upload stay failed."""
    services = current_app.extensions["recog"]
    header = batch_or_404(services, batch_id)
    if header.get("cancel_requested_at") is not None:
        raise ApiError(
            409,
            "batch_cancelled",
            f"batch {header['batch_id']} was cancelled: its failed jobs are not retried; send those "
            "files again as a new batch",
        )
    retried = requeue_failed(services, header)
    if not retried:
        raise ApiError(
            409,
            "nothing_to_retry",
            f"batch {header['batch_id']} has no failed job a retry could change (a file refused at "
            "upload would be refused again); GET /v1/batches/<id>/results?status=failed lists its failures",
        )
    return jsonify({**_view(services, header), "retried": retried}), 202


@bp.get("")
def listed():
    """The caller's batches, newest first, a page at a time: `next` is the next page's cursor."""
    services = current_app.extensions["recog"]
    limit = _limit(services.settings.max_batches_listed)
    after = _cursor(request.args.get("cursor"))
    rows = services.store.tenant_batches(caller().tenant, limit + 1, after)
    more, rows = len(rows) > limit, rows[:limit]
    batches = [
        {
            "id": str(row["batch_id"]),
            "name": row["name"],
            "model": row["model_name"],
            "created_at": iso(row["created_at"]),
            "links": {"self": url_for("batches.show", batch_id=str(row["batch_id"]))},
        }
        for row in rows
    ]
    last = rows[-1] if more else None
    cursor = f"{_millis(last['created_at'])}.{last['batch_id']}" if last else None
    return jsonify({"batches": batches, "next": cursor})


def _limit(most: int) -> int:
    raw = request.args.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise ApiError(400, "bad_limit", f"limit must be a whole number from 1 to {most}; got {raw!r}")
    return int(raw)


# Milliseconds (13 digits reach the year 2286), a dot, a batch id.
HEX = "[0-9a-fA-F]"
CURSOR = re.compile(rf"[0-9]{{1,13}}\.{HEX}{{8}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{12}}")


def _cursor(raw: str | None) -> tuple[datetime, uuid.UUID] | None:
    """Where the previous page ended: its last batch's creation (ms since 1970) and id. Made of
    values the API shows anyway, so a made-up cursor reads nothing it should not."""
    if raw is None:
        return None
    millis, _, batch_id = raw.partition(".")
    uid = parse_job_id(batch_id)
    if not CURSOR.fullmatch(raw) or uid is None:
        raise ApiError(400, "bad_cursor", "cursor must be the 'next' value of the previous page, unchanged")
    return datetime.fromtimestamp(int(millis) / 1000, UTC).replace(tzinfo=None), uid


def _millis(moment: datetime) -> int:
    return round(as_utc(moment).timestamp() * 1000)


@bp.get("/<batch_id>")
def show(batch_id: str):
    services = current_app.extensions["recog"]
    header = batch_or_404(services, batch_id)
    return jsonify(_view(services, header))


@bp.get("/<batch_id>/results")
def results(batch_id: str):
    services = current_app.extensions["recog"]
    header = batch_or_404(services, batch_id)
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise ApiError(400, "bad_format", f"format must be 'csv' or 'json'; got {fmt!r}")
    status = request.args.get("status")
    if status is not None and status not in LINE_STATUSES:
        raise ApiError(400, "bad_status", f"status must be one of {', '.join(LINE_STATUSES)}; got {status!r}")
    rows = services.store.batch_rows(header["batch_id"])
    if status is not None:  # ?status=failed: the batch's dead letters
        rows = (row for row in rows if row["status"] == status)
    stream = _csv_lines(rows) if fmt == "csv" else _json_chunks(rows)
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    filename = f"batch-{header['batch_id']}.{fmt}"
    return Response(
        stream_with_context(stream),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _files_held(services, header: dict, intake: Intake) -> int:
    """Files the batch holds already, less this upload's own parts (written by an earlier attempt
    under its key, they are not more files)."""
    ours = {part.part_id for part in plan_work(intake, services.settings.chunk_size, utcnow())[1]}
    counts = batch_counts(services.store, header)
    return sum(count.total for part_id, count in counts.items() if part_id not in ours)


def _check_room(settings, intake: Intake, held: int) -> None:
    """Checked once the upload is read (its bytes stored, but no job recorded): concurrent uploads
    to one batch can each pass, so a batch may end up to their sum past the limit."""
    if held + intake.files > settings.max_files_per_batch:
        raise batch_full(settings.max_files_per_batch, held, intake.files)


def _take_uploads(services, intake: Intake) -> list[dict]:
    """Store every part; a 4xx half-way refuses the whole request (bytes already stored stay, as
    another upload may share them)."""
    settings = services.settings
    files = request.files.getlist("files")
    archive = request.files.get("archive")
    if not files and archive is None:
        raise ApiError(
            400,
            "missing_files",
            "send images in multipart fields 'files' (repeat it) or one zip in the field 'archive'",
        )
    if len(files) > settings.max_files_per_request:
        raise too_many_files(settings.max_files_per_request, len(files))
    skipped: list[dict] = []
    for upload in files:
        take_part(services, intake, upload.stream, upload.filename)
    if archive is not None:
        for entry in read_zip(
            archive.stream, settings.zip_max_entries, settings.max_upload_bytes, settings.zip_max_bytes
        ):
            if entry.skipped:
                skipped.append({"file": entry.name, "reason": entry.skipped})
            else:
                take(services, intake, entry.data, entry.name, strict=False)
    return skipped


def _accepted_body(intake: Intake, skipped: list[dict], name: str) -> dict:
    batch_id = str(intake.batch_id)
    links = {
        "self": url_for("batches.show", batch_id=batch_id),
        "results": url_for("batches.results", batch_id=batch_id),
        "files": url_for("batches.add_files", batch_id=batch_id),
    }
    return {
        "id": batch_id,
        "name": name,
        "model": intake.model_name,
        "accepted": len(intake.accepted),
        "failed": [{"file": job.filename, "error": error} for job, error in intake.refused],
        "skipped": skipped,
        "links": links,
    }


def batch_or_404(services, batch_id: str) -> dict:
    uid = parse_job_id(batch_id)
    if uid is None:
        raise ApiError(400, "bad_batch_id", f"{batch_id!r} is not a batch id; batch ids are UUIDs")
    header = services.store.get_batch(uid)
    if not caller().sees(header):
        raise ApiError(404, "unknown_batch", f"no batch with id {uid}")
    return header


def _check_open(header: dict) -> None:
    if header.get("cancel_requested_at") is not None:
        raise ApiError(
            409,
            "batch_cancelled",
            f"batch {header['batch_id']} was cancelled and takes no more files; start another batch",
        )
    if header.get("closed"):
        raise ApiError(
            409,
            "batch_closed",
            f"batch {header['batch_id']} is closed and takes no more files; start another batch",
        )


# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> object:
    """A client's file name (or a model's label) as text a spreadsheet will not run: OWASP's
    advice, a leading apostrophe. The JSON format gives the names untouched."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_lines(rows):
    return csv_stream(RESULT_COLUMNS, (batch_line_view(row) for row in rows))


def csv_stream(columns, rows):
    """Rows (dicts) as CSV under a header of those columns, handed on about 64 kB at a time, each
    cell made safe for a spreadsheet (csv_cell)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row[c]) for c in columns])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _json_chunks(rows):
    yield "["
    for n, row in enumerate(rows):
        yield ("," if n else "") + json.dumps(batch_line_view(row))
    yield "]"
