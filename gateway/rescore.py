"""Re-scoring a batch with another model, and the two compared file by file.

POST /v1/batches/<id>/rescore makes a new batch of the same images, read from the image store
(nothing is uploaded again), for another model; GET /v1/batches/<new>/compare pairs each file's
old and new answers. A re-scored job's id derives from its source job's (rescore_id), so the
pairing needs no table of its own.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context, url_for

from gateway.auth import caller
from gateway.batches import batch_or_404, csv_cell
from gateway.errors import ApiError
from gateway.intake import REFUSED_AT_UPLOAD, Intake, check_model, commit
from model.registry import describe
from shared.jobs import DONE, FINAL_STATES, NewJob, utcnow

bp = Blueprint("rescore", __name__, url_prefix="/v1/batches")

COMPARE_COLUMNS = (
    "file",
    "old_status",
    "old_label",
    "old_confidence",
    "new_status",
    "new_label",
    "new_confidence",
    "changed",
    "new_error",
    "old_job_id",
    "new_job_id",
)
NO_LABEL = "(none)"  # a confusion's name for "no digit found"


def rescore_id(rescore_batch: uuid.UUID, source_job: uuid.UUID) -> uuid.UUID:
    """A re-scored file's job id: compare finds it from its source job's, without a lookup."""
    return uuid.uuid5(rescore_batch, str(source_job))


@bp.post("/<batch_id>/rescore")
def rescore(batch_id: str):
    """A new batch: every image of this one that was recognised or failed in a worker, for the
    model asked for. Files refused at upload were never stored, so are left out (counted)."""
    services = current_app.extensions["recog"]
    source = batch_or_404(services, batch_id)
    model = _model(services.settings, request.form.get("model"))
    tenant = caller().tenant
    store = services.store
    lines = list(store.batch_rows(source["batch_id"]))
    rows = store.job_rows([line["job_id"] for line in lines]) if lines else {}
    new_id = uuid.uuid4()
    intake = Intake(model, utcnow(), new_id, tenant)
    left_out = 0
    for line in lines:
        row = rows.get(line["job_id"])
        if row is None or row.get("worker") == REFUSED_AT_UPLOAD or not row.get("sha256"):
            left_out += 1
            continue
        intake.accepted.append(_job(row, rescore_id(new_id, row["job_id"]), intake))
    if not intake.accepted:
        raise ApiError(
            409,
            "nothing_to_rescore",
            f"batch {source['batch_id']} has no file that was ever recognised (files refused at "
            "upload were never stored); send the images as a new batch",
        )
    name = f"rescore of {source['name'] or source['batch_id']}"[:200]
    store.insert_batch(new_id, name, model, intake.created_at, tenant, source=source["batch_id"])
    commit(services, intake)
    store.close_batch(new_id)  # its files are the source's: it takes no others
    links = {
        "self": url_for("batches.show", batch_id=str(new_id)),
        "results": url_for("batches.results", batch_id=str(new_id)),
        "compare": url_for("rescore.compare", batch_id=str(new_id)),
        "source": url_for("batches.show", batch_id=str(source["batch_id"])),
    }
    body = {
        "id": str(new_id),
        "name": name,
        "model": model,
        "source": str(source["batch_id"]),
        "accepted": len(intake.accepted),
        "left_out": left_out,
        "links": links,
    }
    return jsonify(body), 202, {"Location": links["self"]}


@bp.get("/<batch_id>/compare")
def compare(batch_id: str):
    services = current_app.extensions["recog"]
    header = batch_or_404(services, batch_id)
    if header.get("source_batch") is None:
        raise ApiError(
            400,
            "not_a_rescore",
            f"batch {header['batch_id']} re-scores no other batch; compare the batch that "
            "POST /v1/batches/<id>/rescore answered with",
        )
    source = services.store.get_batch(header["source_batch"])
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise ApiError(400, "bad_format", f"format must be 'csv' or 'json'; got {fmt!r}")
    pairs = _pairs(services.store, header)
    if fmt == "json":
        files = list(pairs)
        return jsonify(
            {
                "source": str(header["source_batch"]),
                "rescore": str(header["batch_id"]),
                "old_model": source["model_name"] if source else None,
                "new_model": header["model_name"],
                "summary": summary(files),
                "files": files,
            }
        )
    return Response(
        stream_with_context(_csv(pairs)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="compare-{header["batch_id"]}.csv"'},
    )


def summary(files: list[dict]) -> dict:
    """Agreement over the files both models answered (done both times), and the confusion of old
    labels against new, "(none)" for no digit."""
    both = [f for f in files if f["old_status"] == DONE and f["new_status"] == DONE]
    confusion: dict[str, Counter] = {}
    for f in both:
        confusion.setdefault(f["old_label"] or NO_LABEL, Counter())[f["new_label"] or NO_LABEL] += 1
    agreeing = sum(not f["changed"] for f in both)
    return {
        "files": len(files),
        "compared": len(both),
        "agreeing": agreeing,
        "changed": len(both) - agreeing,
        "agreement_percent": round(100.0 * agreeing / len(both), 2) if both else None,
        "not_final": sum(f["new_status"] not in FINAL_STATES for f in files if f["new_status"] is not None),
        "not_rescored": sum(f["new_status"] is None for f in files),
        "confusion": {old: dict(sorted(new.items())) for old, new in sorted(confusion.items())},
    }


def _pairs(store, header: dict):
    """Each source file with its re-scored self (None where it was left out), in file-name order."""
    new = {line["job_id"]: line for line in store.batch_rows(header["batch_id"])}
    for old in store.batch_rows(header["source_batch"]):
        mine = new.get(rescore_id(header["batch_id"], old["job_id"]))
        both_done = mine is not None and old["status"] == DONE and mine["status"] == DONE
        yield {
            "file": old["filename"],
            "old_status": old["status"],
            "old_label": old["label"],
            "old_confidence": old["confidence"],
            "new_status": mine and mine["status"],
            "new_label": mine and mine["label"],
            "new_confidence": mine and mine["confidence"],
            "changed": (old["label"] != mine["label"]) if both_done else None,
            "new_error": mine and mine["error"],
            "old_job_id": str(old["job_id"]),
            "new_job_id": str(mine["job_id"]) if mine else None,
        }


def _csv(pairs):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COMPARE_COLUMNS)
    for pair in pairs:
        writer.writerow([csv_cell(pair[c]) for c in COMPARE_COLUMNS])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _model(settings, asked: str | None) -> str:
    """NAME or NAME:VERSION; a version must be the one the models folder holds now."""
    if not asked:
        raise ApiError(400, "missing_model", "send the model to re-score with in the form field 'model'")
    name, _, version = asked.partition(":")
    name = check_model(settings, name)
    if version and describe(settings.models_dir, name).version != version:
        here = describe(settings.models_dir, name).version
        raise ApiError(
            400,
            "unknown_model_version",
            f"model {name!r} is at version {here} here; version {version!r} is not available",
        )
    return name


def _job(row: dict, job_id: uuid.UUID, intake: Intake) -> NewJob:
    return NewJob(
        job_id,
        row["filename"],
        row["sha256"],
        row["size_bytes"] or 0,
        row["image_format"] or "",
        row["width"] or 0,
        row["height"] or 0,
        intake.model_name,
        intake.created_at,
        intake.batch_id,
        intake.tenant,
    )
