"""Re-scoring a batch with another model, and the two compared file by file.

POST /v1/batches/<id>/rescore makes a new batch of the same images, read from the image store
(nothing is uploaded again), for another model; GET /v1/batches/<new>/compare pairs each file's
old and new answers. A re-scored job's id derives from its source job's (rescore_id), so the
pairing needs no table of its own.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from itertools import groupby
from operator import itemgetter

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context, url_for

from gateway.auth import caller
from gateway.batches import batch_or_404, csv_stream
from gateway.errors import ApiError
from gateway.intake import Intake, check_model, commit, stored_rows
from model.registry import describe
from shared.jobs import DONE, FINAL_STATES, BatchHeader, NewJob, utcnow

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
    """A new batch of this one's stored images for another model. Files refused at upload were
    never stored, so are left out (counted); the others, whatever their status, are in."""
    services = current_app.extensions["recog"]
    source = batch_or_404(services, batch_id)
    model = _model(services.settings, request.form.get("model"))
    # The caller's tenant, not the source's: a batch from before keys had none to list it under.
    tenant = caller().tenant
    store = services.store
    lines = list(store.batch_rows(source["batch_id"]))
    new_id = uuid.uuid4()
    intake = Intake(model, utcnow(), new_id, tenant)
    for row in stored_rows(store, [line["job_id"] for line in lines]):
        intake.accepted.append(_job(row, rescore_id(new_id, row["job_id"]), intake))
    if not intake.accepted:
        raise ApiError(
            409,
            "nothing_to_rescore",
            f"batch {source['batch_id']} has no file that was ever stored (files refused at upload "
            "never are); send the images as a new batch",
        )
    # New rows name these images now: the collector must not count them as unused. One gone
    # already fails in the new batch, reported for its file.
    services.images.touch(sorted({(job.sha256, job.size_bytes) for job in intake.accepted}))
    # Its header (closed: its files are the source's), its jobs, then its place in the tenant's
    # list: a re-score refused on the way (a quota, the store down) leaves nothing anyone sees,
    # and no job whose batch cannot be read.
    name = f"rescore of {source['name'] or source['batch_id']}"[:200]
    header = BatchHeader(new_id, name, model, intake.created_at, tenant)
    store.insert_rescore(header, source["batch_id"])
    commit(services, intake)
    store.list_batch(header)
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
        "left_out": len(lines) - len(intake.accepted),
        "links": links,
    }
    return jsonify(body), 202, {"Location": links["self"]}


@bp.get("/<batch_id>/compare")
def compare(batch_id: str):
    """Streamed, a pair of lines at a time, in file-name order: a 100,000-file batch is never
    held whole. ?files=false: the JSON's summary alone."""
    services = current_app.extensions["recog"]
    header = batch_or_404(services, batch_id)
    if header.get("source_batch") is None:
        raise ApiError(  # no such comparison: as a missing resource
            404,
            "not_a_rescore",
            f"batch {header['batch_id']} re-scores no other batch; compare the batch that "
            "POST /v1/batches/<id>/rescore answered with",
        )
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise ApiError(400, "bad_format", f"format must be 'csv' or 'json'; got {fmt!r}")
    files = request.args.get("files", "true")
    if files not in ("true", "false"):
        raise ApiError(400, "bad_files", f"files must be 'true' or 'false'; got {files!r}")
    store = services.store
    source = store.get_batch(header["source_batch"])
    # Both reads begin here, so a store that is down answers 503, not a cut-short 200.
    pairs = _pairs(
        header["batch_id"], store.batch_rows(header["source_batch"]), store.batch_rows(header["batch_id"])
    )
    if fmt == "csv":
        stream = csv_stream(COMPARE_COLUMNS, pairs)
    else:
        about = {
            "source": str(header["source_batch"]),
            "rescore": str(header["batch_id"]),
            "old_model": source["model_name"] if source else None,
            "new_model": header["model_name"],
        }
        stream = _json(about, pairs, files == "true")
    name = f"compare-{header['batch_id']}.{fmt}"
    return Response(
        stream_with_context(stream),
        mimetype="text/csv" if fmt == "csv" else "application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


class Agreement:
    """The comparison's summary, summed a pair at a time: agreement over the files both models
    answered (done both times), and the confusion of old labels against new."""

    def __init__(self) -> None:
        self.files = self.compared = self.agreeing = self.not_final = self.not_rescored = 0
        self.confusion: dict[str, Counter] = {}

    def add(self, pair: dict) -> None:
        self.files += 1
        if pair["new_status"] is None:
            self.not_rescored += 1
        elif pair["new_status"] not in FINAL_STATES:
            self.not_final += 1
        if pair["changed"] is not None:
            self.compared += 1
            self.agreeing += not pair["changed"]
            old, new = pair["old_label"] or NO_LABEL, pair["new_label"] or NO_LABEL
            self.confusion.setdefault(old, Counter())[new] += 1

    def as_dict(self) -> dict:
        return {
            "files": self.files,
            "compared": self.compared,
            "agreeing": self.agreeing,
            "changed": self.compared - self.agreeing,
            "agreement_percent": round(100.0 * self.agreeing / self.compared, 2) if self.compared else None,
            "not_final": self.not_final,
            "not_rescored": self.not_rescored,
            "confusion": {old: dict(sorted(new.items())) for old, new in sorted(self.confusion.items())},
        }


def _pairs(new_batch: uuid.UUID, old_lines, new_lines):
    """Each source line with its re-scored self (None where it was left out). Both partitions are
    in file-name order: walked side by side, a file name's lines at a time."""
    name = itemgetter("filename")
    new_groups = groupby(new_lines, key=name)
    pending = next(new_groups, None)
    for filename, olds in groupby(old_lines, key=name):
        while pending is not None and pending[0] < filename:
            pending = next(new_groups, None)
        mine: dict = {}
        if pending is not None and pending[0] == filename:
            mine = {line["job_id"]: line for line in pending[1]}
            pending = next(new_groups, None)
        for old in olds:
            yield _pair(old, mine.get(rescore_id(new_batch, old["job_id"])))


def _pair(old: dict, new: dict | None) -> dict:
    both_done = new is not None and old["status"] == DONE and new["status"] == DONE
    return {
        "file": old["filename"],
        "old_status": old["status"],
        "old_label": old["label"],
        "old_confidence": old["confidence"],
        "new_status": new and new["status"],
        "new_label": new and new["label"],
        "new_confidence": new and new["confidence"],
        "changed": (old["label"] != new["label"]) if both_done else None,
        "new_error": new and new["error"],
        "old_job_id": str(old["job_id"]),
        "new_job_id": str(new["job_id"]) if new else None,
    }


def _json(about: dict, pairs, with_files: bool):
    """The files first, streamed; the summary, summed meanwhile, last."""
    agreement = Agreement()
    yield json.dumps(about)[:-1] + (', "files": [' if with_files else "")
    for n, pair in enumerate(pairs):
        agreement.add(pair)
        if with_files:
            yield ("," if n else "") + json.dumps(pair)
    yield ("]" if with_files else "") + ', "summary": ' + json.dumps(agreement.as_dict()) + "}"


def _model(settings, asked: str | None) -> str:
    """NAME or NAME:VERSION; a version must be the one the models folder holds now."""
    if not asked:
        raise ApiError(400, "missing_model", "send the model to re-score with in the form field 'model'")
    name, _, version = asked.partition(":")
    name = check_model(settings, name)
    here = describe(settings.models_dir, name).version if version else None
    if version and here != version:
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
