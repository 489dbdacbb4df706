"""GET /v1/openapi.json: the API described for clients and code generators (OpenAPI 3.1).

Written by hand next to the endpoints it describes; tests/integration/test_openapi.py checks real
responses against it, so a change to a response that is not made here too fails the tests.
"""

from __future__ import annotations

import copy

from flask import Blueprint, current_app, jsonify

from gateway.batches import CURSOR
from model.registry import available, describe
from shared.version import service_version

bp = Blueprint("openapi", __name__)

NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_NUMBER = {"type": ["number", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}
TIME = {"type": ["string", "null"], "format": "date-time"}
UUID = {"type": "string", "format": "uuid"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _other(media_type: str, description: str) -> dict:
    """A response whose body is not JSON (HTML, CSV, Prometheus text): described by its type alone."""
    return {"description": description, "content": {media_type: {}}}


def _errors(*statuses: int) -> dict:
    meaning = {
        400: "a missing or malformed parameter, or an unknown model",
        401: "no API key, or one this service does not know (or revoked); see WWW-Authenticate",
        403: "the API key lacks the scope this needs (submit, read or admin)",
        404: "no such job or batch (or another tenant's), or (a comparison) a batch that re-scores none",
        409: "an upload under this Idempotency-Key is still being recorded (retry after Retry-After), "
        "the batch is closed or cancelled, a cancel finds the job or batch ended already, or a "
        "retry finds no failed job to retry (no Retry-After: for good)",
        413: "the upload, an image's pixel count, or a batch's files are over the limit",
        415: "not an image in a format recog reads",
        422: "a truncated or corrupt image or zip, an Idempotency-Key reused for other files, or a "
        "callback_url the service may not call",
        429: "the key's request rate (RECOG_REQUESTS_PER_SECOND) or, for an upload, the tenant's "
        "queued images (RECOG_MAX_QUEUED_IMAGES) are over their limit; retry after Retry-After",
        503: "Cassandra is not answering, or (POST /v1/jobs) the queue is full; retry after Retry-After",
    }
    return {str(s): _json(_ref("Error"), meaning[s]) for s in statuses}


def _obj(properties: dict, required: tuple[str, ...] | None = None) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
    }


CALLBACK_URL = {
    "type": "string",
    "description": "http(s) URL POSTed a signed job.finished or batch.finished JSON once it ends "
    "(a batch: once closed and ended); see docs/api.md#webhooks",
}
CALLBACK = {
    "type": ["object", "null"],
    "description": "its webhook's delivery; null when it has no callback_url",
    "properties": {
        "url": {"type": "string"},
        "state": {"enum": ["waiting", "retrying", "delivered", "gave_up"]},
        "attempts": {
            "type": "array",
            "items": _obj(
                {"at": TIME, "status_code": NULLABLE_INT, "error": NULLABLE_STRING, "ms": NULLABLE_INT}
            ),
        },
        "next_attempt_at": TIME,
        "delivered_at": TIME,
    },
    "required": ["url", "state", "attempts", "next_attempt_at", "delivered_at"],
}


WAIT = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": "Seconds (up to RECOG_MAX_WAIT_SECONDS) to wait for the job to finish before answering.",
    # maximum: RECOG_MAX_WAIT_SECONDS, filled in by described()
    "schema": {"type": "number", "exclusiveMinimum": 0},
}
# Filled in by described(): the models the server has now, and "" for RECOG_MODEL.
MODEL = {"type": "string", "description": "a model the server has; empty or left out: RECOG_MODEL"}


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "A new key (a UUID, say) with every upload, the same key to retry one: a retry within "
        "RECOG_IDEMPOTENCY_HOURS gets the first answer and makes no second job."
    ),
    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
}


def _id_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": UUID}


SCHEMAS = {
    "Error": _obj(
        {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "description": "stable, e.g. corrupt_image, unknown_job"},
                    "message": {"type": "string", "description": "what went wrong and what to do"},
                    "job_ids": {"type": "array", "items": UUID},
                },
                "required": ["code", "message"],
            }
        }
    ),
    "Job": _obj(
        {
            "id": UUID,
            "status": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
            "label": NULLABLE_STRING,
            "confidence": NULLABLE_NUMBER,
            "probabilities": {"type": "array", "items": {"type": "number"}},
            "reason": {**NULLABLE_STRING, "description": "why there is no label, e.g. 'no digit'"},
            "error": NULLABLE_STRING,
            "model": _obj({"name": NULLABLE_STRING, "version": NULLABLE_STRING}),
            "file": _obj(
                {
                    "name": NULLABLE_STRING,
                    "sha256": NULLABLE_STRING,
                    "bytes": NULLABLE_INT,
                    "format": NULLABLE_STRING,
                    "width": NULLABLE_INT,
                    "height": NULLABLE_INT,
                }
            ),
            "created_at": TIME,
            "started_at": TIME,
            "finished_at": TIME,
            "queue_ms": NULLABLE_NUMBER,
            "inference_ms": NULLABLE_NUMBER,
            "batch_size": NULLABLE_INT,
            "cached": {"type": "boolean"},
            "batch_id": {"type": ["string", "null"], "format": "uuid"},
            "worker": NULLABLE_STRING,
            "cancel_requested_at": {**TIME, "description": "when its cancel was asked for, if it was"},
            "callback": CALLBACK,
        }
    ),
    "JobAccepted": _obj(
        {"id": UUID, "status": {"const": "queued"}, "links": _obj({"self": {"type": "string"}})}
    ),
    "BatchAccepted": _obj(
        {
            "id": UUID,
            "name": {"type": "string"},
            "model": {"type": "string"},
            "accepted": {"type": "integer", "minimum": 0},
            "failed": {
                "type": "array",
                "description": "files refused at upload; each is also a failed job of the batch",
                "items": _obj({"file": {"type": "string"}, "error": {"type": "string"}}),
            },
            "skipped": {
                "type": "array",
                "description": "zip entries that are not images (directories, nested archives, links...)",
                "items": _obj({"file": {"type": "string"}, "reason": {"type": "string"}}),
            },
            "links": _obj(
                {"self": {"type": "string"}, "results": {"type": "string"}, "files": {"type": "string"}}
            ),
        }
    ),
    "BatchStatus": _obj(
        {
            "id": UUID,
            "name": {"type": "string"},
            "model": {"type": "string"},
            "status": {
                "enum": ["queued", "running", "cancelling", "done", "partial", "failed", "cancelled"],
                "description": "cancelling: its cancel was asked for and its workers have yet to skip "
                "the rest; done, partial, failed and cancelled are final",
            },
            "total": {"type": "integer"},
            "queued": {"type": "integer"},
            "running": {"type": "integer"},
            "done": {"type": "integer"},
            "failed": {"type": "integer"},
            "cached": {"type": "integer"},
            "cancelled": {"type": "integer", "description": "done + failed + cancelled = total once final"},
            "progress_percent": {"type": "number", "minimum": 0, "maximum": 100},
            "images_per_second": NULLABLE_NUMBER,
            "eta_seconds": NULLABLE_NUMBER,
            "closed": {"type": "boolean", "description": "takes no more files"},
            "cancel_requested_at": {
                **TIME,
                "description": "when the batch's cancel was asked for, if it was",
            },
            "created_at": TIME,
            "first_finished_at": TIME,
            "finished_at": TIME,
            "callback": CALLBACK,
        }
    ),
    "RescoreAccepted": _obj(
        {
            "id": UUID,
            "name": {"type": "string"},
            "model": {"type": "string"},
            "source": UUID,
            "accepted": {"type": "integer", "minimum": 1},
            "left_out": {"type": "integer", "minimum": 0, "description": "files refused at upload"},
            "links": _obj(
                {
                    "self": {"type": "string"},
                    "results": {"type": "string"},
                    "compare": {"type": "string"},
                    "source": {"type": "string"},
                }
            ),
        }
    ),
    "Comparison": _obj(
        {
            "source": UUID,
            "rescore": UUID,
            "old_model": NULLABLE_STRING,
            "new_model": {"type": "string"},
            "summary": _obj(
                {
                    "files": {"type": "integer"},
                    "compared": {"type": "integer", "description": "files done both times"},
                    "agreeing": {"type": "integer"},
                    "changed": {"type": "integer"},
                    "agreement_percent": NULLABLE_NUMBER,
                    "not_final": {"type": "integer"},
                    "not_rescored": {"type": "integer"},
                    "confusion": {
                        "type": "object",
                        "description": "old label -> new label -> files; (none) for no digit",
                        "additionalProperties": {
                            "type": "object",
                            "additionalProperties": {"type": "integer"},
                        },
                    },
                }
            ),
            "files": {
                "type": "array",
                "items": _obj(
                    {
                        "file": {"type": "string"},
                        "old_status": {"type": "string"},
                        "old_label": NULLABLE_STRING,
                        "old_confidence": NULLABLE_NUMBER,
                        "new_status": NULLABLE_STRING,
                        "new_label": NULLABLE_STRING,
                        "new_confidence": NULLABLE_NUMBER,
                        "changed": {"type": ["boolean", "null"]},
                        "new_error": NULLABLE_STRING,
                        "old_job_id": UUID,
                        "new_job_id": {"type": ["string", "null"], "format": "uuid"},
                    }
                ),
            },
        },
        required=("source", "rescore", "old_model", "new_model", "summary"),
    ),
    "BatchList": _obj(
        {
            "batches": {
                "type": "array",
                "items": _obj(
                    {
                        "id": UUID,
                        "name": {"type": "string"},
                        "model": {"type": "string"},
                        "created_at": TIME,
                        "links": _obj({"self": {"type": "string"}}),
                    }
                ),
            },
            "next": {**NULLABLE_STRING, "description": "the next page's cursor; null after the last"},
        }
    ),
    "BatchResult": _obj(
        {
            "file": {"type": "string"},
            "status": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
            "label": NULLABLE_STRING,
            "confidence": NULLABLE_NUMBER,
            "reason": NULLABLE_STRING,
            "error": NULLABLE_STRING,
            "cached": {"type": "boolean"},
            "job_id": UUID,
            "finished_at": TIME,
        }
    ),
    "Health": _obj(
        {
            "status": {"type": "string"},
            "version": {"type": "string"},
            "checks": {"type": "object"},
            "message": {"type": "string"},
        },
        required=("status",),
    ),
}

BATCH_FORM = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {
                "files": {
                    "type": "array",
                    "items": {"type": "string", "format": "binary"},
                    "minItems": 1,
                    # maxItems: RECOG_MAX_FILES_PER_REQUEST, filled in by described()
                    "description": "images; repeat the field",
                },
                "archive": {"type": "string", "format": "binary", "description": "one zip of images"},
                # No type: a form field is text whatever it holds, and any text is a name.
                "name": {"description": "any text, kept to its first 200 characters"},
                "model": MODEL,
                "callback_url": CALLBACK_URL,
            },
            "anyOf": [{"required": ["files"]}, {"required": ["archive"]}],
        }
    }
}

# More files for a batch: its name and model are the batch's own, so the form has neither.
MORE_FILES_FORM = copy.deepcopy(BATCH_FORM)
for _field in ("name", "model", "callback_url"):
    del MORE_FILES_FORM["multipart/form-data"]["schema"]["properties"][_field]

PATHS = {
    "/v1/jobs": {
        "post": {
            "summary": "Recognise one image",
            "parameters": [WAIT, IDEMPOTENCY_KEY],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "format": "binary", "minLength": 1},
                                "model": MODEL,
                                "callback_url": CALLBACK_URL,
                            },
                            "required": ["file"],
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_ref("Job"), "finished within ?wait="),
                "202": _json(_ref("JobAccepted"), "accepted and queued"),
                **_errors(400, 409, 413, 415, 422, 503),
            },
        }
    },
    "/v1/jobs/{job_id}": {
        "get": {
            "summary": "Where a job stands, with its result once done",
            "parameters": [_id_param("job_id"), WAIT],
            "responses": {"200": _json(_ref("Job"), "the job"), **_errors(400, 404, 503)},
        }
    },
    "/v1/jobs/{job_id}/cancel": {
        "post": {
            "summary": "Cancel a job: skipped if still queued, finished if already running",
            "parameters": [_id_param("job_id")],
            "responses": {
                "200": _json(_ref("Job"), "its cancel is asked for; the job as it stands"),
                **_errors(400, 404, 409, 503),
            },
        }
    },
    "/v1/batches": {
        "get": {
            "summary": "Your batches, newest first, a page at a time",
            "parameters": [
                # maximum: RECOG_MAX_BATCHES_LISTED, filled in by described()
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 20}},
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "the previous page's 'next', unchanged",
                    "schema": {"type": "string", "pattern": f"^{CURSOR.pattern}$"},
                },
            ],
            "responses": {"200": _json(_ref("BatchList"), "a page of batches"), **_errors(400, 503)},
        },
        "post": {
            "summary": "Recognise many images (files or a zip) as one batch",
            "parameters": [IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": BATCH_FORM},
            "responses": {
                "202": _json(_ref("BatchAccepted"), "accepted and queued"),
                **_errors(400, 409, 413, 422, 503),
            },
        },
    },
    "/v1/batches/{batch_id}": {
        "get": {
            "summary": "A batch's progress: counts, rate and ETA",
            "parameters": [_id_param("batch_id")],
            "responses": {"200": _json(_ref("BatchStatus"), "progress"), **_errors(400, 404, 503)},
        }
    },
    "/v1/batches/{batch_id}/close": {
        "post": {
            "summary": "Close a batch: it takes no more files (closing again is harmless)",
            "parameters": [_id_param("batch_id")],
            "responses": {
                "200": _json(_ref("BatchStatus"), "closed; its progress"),
                **_errors(400, 404, 503),
            },
        }
    },
    "/v1/batches/{batch_id}/cancel": {
        "post": {
            "summary": "Cancel a batch: its queued images are skipped, it takes no more files",
            "parameters": [_id_param("batch_id")],
            "responses": {
                "200": _json(_ref("BatchStatus"), "its cancel is asked for; its progress ('cancelling')"),
                **_errors(400, 404, 409, 503),
            },
        }
    },
    "/v1/batches/{batch_id}/retry": {
        "post": {
            "summary": "Queue a batch's failed jobs again, in the same batch under the same ids",
            "parameters": [_id_param("batch_id")],
            "responses": {
                "202": _json(
                    {"allOf": [_ref("BatchStatus"), _obj({"retried": {"type": "integer", "minimum": 1}})]},
                    "queued again; the batch's progress and how many were retried",
                ),
                **_errors(400, 404, 409, 413, 429, 503),
            },
        }
    },
    "/v1/batches/{batch_id}/rescore": {
        "post": {
            "summary": "Re-score a batch's images with another model, as a new batch",
            "parameters": [_id_param("batch_id")],
            "requestBody": {
                "required": True,
                "content": {
                    media: {
                        "schema": {
                            "type": "object",
                            "properties": {"model": {**MODEL, "description": "NAME, or NAME:VERSION"}},
                            "required": ["model"],
                        }
                    }
                    for media in ("multipart/form-data", "application/x-www-form-urlencoded")
                },
            },
            "responses": {
                "202": _json(_ref("RescoreAccepted"), "the new batch, queued"),
                **_errors(400, 404, 409, 413, 429, 503),
            },
        }
    },
    "/v1/batches/{batch_id}/compare": {
        "get": {
            "summary": "A re-scored batch against its source, file by file, with a summary (JSON)",
            "parameters": [
                _id_param("batch_id"),
                {"name": "format", "in": "query", "schema": {"enum": ["csv", "json"], "default": "csv"}},
                {
                    "name": "files",
                    "in": "query",
                    "description": "false: the JSON's summary alone, without its files",
                    "schema": {"enum": ["true", "false"], "default": "true"},
                },
            ],
            "responses": {
                "200": {
                    "description": "the comparison",
                    "content": {
                        "text/csv": {},  # header: the files' fields, in the JSON's order
                        "application/json": {"schema": _ref("Comparison")},
                    },
                },
                **_errors(400, 404, 503),
            },
        }
    },
    "/v1/batches/{batch_id}/files": {
        "post": {
            "summary": "Add more files to a batch",
            "parameters": [_id_param("batch_id"), IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": MORE_FILES_FORM},
            "responses": {
                "202": _json(_ref("BatchAccepted"), "accepted and queued"),
                **_errors(400, 404, 409, 413, 422, 503),
            },
        }
    },
    "/v1/batches/{batch_id}/results": {
        "get": {
            "summary": "One row per file, streamed",
            "parameters": [
                _id_param("batch_id"),
                {"name": "format", "in": "query", "schema": {"enum": ["csv", "json"], "default": "csv"}},
                {
                    "name": "status",
                    "in": "query",
                    "description": "only the files of this status: failed lists the batch's dead letters",
                    "schema": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
                },
            ],
            "responses": {
                "200": {
                    "description": "the results",
                    "content": {
                        "text/csv": {},  # header: file,status,label,confidence,reason,error,cached,job_id
                        "application/json": {"schema": {"type": "array", "items": _ref("BatchResult")}},
                    },
                },
                **_errors(400, 404, 503),
            },
        }
    },
    "/healthz": {
        "get": {"summary": "Liveness", "security": [], "responses": {"200": _json(_ref("Health"), "alive")}}
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: Redis and Cassandra answer",
            "security": [],
            "responses": {
                "200": _json(_ref("Health"), "ready"),
                "503": _json(_ref("Health"), "not ready; checks say which"),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics of the gateway (a key with the admin scope)",
            "responses": {"200": _other("text/plain", "Prometheus text format")},
        }
    },
    "/": {
        "get": {
            "summary": "The web page: draw a digit, upload images or a zip, follow batches",
            "security": [],
            "responses": {"200": _other("text/html", "HTML")},
        }
    },
    "/docs": {
        "get": {
            "summary": "This description, readable",
            "security": [],
            "responses": {"200": _other("text/html", "HTML")},
        }
    },
    "/v1/openapi.json": {
        "get": {
            "summary": "This description",
            "security": [],
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
        }
    },
}

SPEC = {
    "openapi": "3.1.0",
    "info": {
        "title": "recog",
        "version": service_version(),
        "description": (
            "Queue-backed image recognition. Every error is JSON: {error: {code, message}}. "
            "Every operation but the health checks, the page and this description needs an API key "
            "(`recog keys create NAME`) as 'Authorization: Bearer <key>'."
        ),
    },
    "paths": PATHS,
    "security": [{"apiKey": []}],
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "an API key: recog_<id>_<secret>"}
        },
    },
}
# Every operation that needs a key may be refused one, or be over the key's request rate.
for _operations in PATHS.values():
    for _operation in _operations.values():
        if "security" not in _operation:
            _operation["responses"].update(_errors(401, 403, 429))


@bp.get("/v1/openapi.json")
def openapi():
    return jsonify(described(current_app.extensions["recog"].settings))


def described(settings) -> dict:
    """SPEC with the bounds that are settings, and the models this server has now, so a request
    the description allows is one the server takes."""
    spec = copy.deepcopy(SPEC)
    paths = spec["paths"]
    for operation in (paths["/v1/jobs"]["post"], paths["/v1/jobs/{job_id}"]["get"]):
        wait = next(p for p in operation["parameters"] if p["name"] == "wait")
        wait["schema"]["maximum"] = settings.max_wait_seconds
    models = ["", *available(settings.models_dir)]
    for path in ("/v1/jobs", "/v1/batches", "/v1/batches/{batch_id}/files"):
        form = paths[path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        if "model" in form["properties"]:
            form["properties"]["model"]["enum"] = models
        if "files" in form["properties"]:
            form["properties"]["files"]["maxItems"] = settings.max_files_per_request
    # A re-score names a model, or a model at the version the server has now.
    names = available(settings.models_dir)
    versions = [f"{name}:{describe(settings.models_dir, name).version}" for name in names]
    for form in paths["/v1/batches/{batch_id}/rescore"]["post"]["requestBody"]["content"].values():
        form["schema"]["properties"]["model"]["enum"] = [*names, *versions]
    limit = next(p for p in paths["/v1/batches"]["get"]["parameters"] if p["name"] == "limit")
    limit["schema"]["maximum"] = settings.max_batches_listed
    return spec
