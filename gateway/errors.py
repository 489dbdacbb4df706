"""Every error is JSON with a code and a message a person can act on."""

from __future__ import annotations

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from gateway.metrics import JOBS_REJECTED, REQUESTS_REFUSED
from shared.store import StoreUnavailable

STORE_DOWN = "the job store (Cassandra) is not answering"
# Sent with every 503 and 429: how long a client should wait before trying again. A restarted
# Redis or Cassandra is back within seconds; clients back off further on their own.
RETRY_AFTER_SECONDS = 5
# And a 409 whose upload under an Idempotency-Key is still being recorded (gateway/idempotency.py);
# another 409 (a closed batch) is for good.
RETRY_LATER = (429, 503)
IN_PROGRESS = "upload_in_progress"
# Requests refused for who sent them or how much they sent, not for what they hold: counted by
# recog_requests_refused_total, whatever the method.
REFUSALS = frozenset(
    {"missing_api_key", "bad_api_key", "missing_scope", "rate_limited", "too_many_queued", "queue_full"}
)


class ApiError(Exception):
    """extra: more fields of the error's JSON; headers: of the response (WWW-Authenticate)."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None, **extra) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra
        self.headers = headers or {}


def too_many_files(limit: int, sent: int | None = None) -> ApiError:
    counted = f"{sent:,} files" if sent is not None else "too many parts"
    return ApiError(
        413,
        "too_many_files",
        f"the request has {counted}; the limit is {limit:,} files a request. "
        "Send the rest with POST /v1/batches/<id>/files",
    )


def batch_full(limit: int, held: int, sent: int) -> ApiError:
    holds = f" and the batch already holds {held:,}" if held else ""
    return ApiError(
        413,
        "batch_full",
        f"this upload has {sent:,} files{holds}; a batch holds at most {limit:,} files "
        "(RECOG_MAX_FILES_PER_BATCH). Start another batch for the rest",
    )


def error_response(status: int, code: str, message: str, **extra):
    if request.method == "POST":  # every refused upload passes here, whatever refused it
        JOBS_REJECTED.labels(code).inc()
    if code in REFUSALS:
        REQUESTS_REFUSED.labels(code).inc()
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    if status in RETRY_LATER or code == IN_PROGRESS:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def register(app: Flask) -> None:

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        response = error_response(exc.status, exc.code, exc.message, **exc.extra)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc):
        limit = request.max_content_length or app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length <= limit:
            # Within the byte limit, so Werkzeug refused the number of form parts (max_form_parts).
            files = app.extensions["recog"].settings.max_files_per_request
            error = too_many_files(files)
            return error_response(error.status, error.code, error.message)
        return error_response(
            413,
            "too_large",
            f"the upload is larger than the limit of {limit:,} bytes "
            f"({limit / 1e6:.0f} MB); send a smaller image",
        )

    @app.errorhandler(StoreUnavailable)
    def _store_down(exc: StoreUnavailable):
        app.logger.warning("store unavailable: %s", exc)
        return error_response(503, "store_unavailable", f"{STORE_DOWN}; retry in a little while")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(exc.code or 500, code, exc.description or exc.name)
        for name, value in exc.get_headers():  # Allow with a 405, say
            if name.lower() not in ("content-type", "retry-after"):
                response.headers.add(name, value)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return error_response(500, "internal_error", "the server failed unexpectedly; the error was logged")
