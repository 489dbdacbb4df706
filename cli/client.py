"""Talk to the gateway over HTTP, ride out its outages, and turn its JSON errors into messages.

A 503 or 429 (the gateway says when to come back, in Retry-After) and a connection that was never
made are tried again with backoff until --retry-for runs out. So is an upload whose connection
broke after it was sent, if it carries an Idempotency-Key: the gateway answers its retry with the
first answer, never a second job. Without a key it is not tried again, as it may have been
accepted. urllib3's own Retry has no overall deadline and no way to say that it is waiting,
hence this loop.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import click
import requests
from urllib3.exceptions import NewConnectionError

from shared.keys import LOCAL_KEY_FILE
from shared.settings import STATE_DIR, Settings

RETRY_FOR = 600.0  # the default of --retry-for: ten minutes
# 409 with Retry-After: an upload under the same Idempotency-Key is still being recorded; its
# answer comes soon. (A 409 without it, a closed batch, is final.)
TRANSIENT_STATUS = (409, 429, 503)
MAX_DELAY = 30.0
IDEMPOTENCY_KEY = "Idempotency-Key"


@functools.cache
def api_key() -> str | None:
    """RECOG_API_KEY, else the key `make up` saved for this machine's user."""
    key = Settings.from_env().api_key
    if key:
        return key
    saved = STATE_DIR / LOCAL_KEY_FILE
    return saved.read_text().strip() if saved.is_file() else None


def upload_headers() -> dict:
    """A new key for one upload, kept across its retries."""
    return {IDEMPOTENCY_KEY: str(uuid.uuid4())}


def check(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        raise click.ClickException(
            f"gateway answered {response.status_code}: {response.text[:200]}"
        ) from None
    if response.status_code >= 400:
        error = body.get("error", {})
        raise click.ClickException(f"{response.status_code} {error.get('code')}: {error.get('message')}")
    return body


def say_waiting(reason: str) -> None:
    click.echo(f"waiting for the service: {reason}", err=True)


def request(
    gateway: str,
    method: str,
    path: str,
    retry_for: float = RETRY_FOR,
    on_wait: Callable[[str], None] = say_waiting,
    **options,
) -> requests.Response:
    """The gateway's answer, after waiting out 503s, 429s and a gateway that is not there.
    repeatable (an option; GETs are): a request that may be sent again after its connection broke,
    whatever it did the first time."""
    repeatable = options.pop("repeatable", method == "GET")
    deadline = time.monotonic() + retry_for
    delay = 1.0
    key = api_key()
    if key:
        options["headers"] = {"Authorization": f"Bearer {key}", **(options.get("headers") or {})}
    while True:
        try:
            response = requests.request(method, f"{gateway}{path}", **options)
            final_409 = response.status_code == 409 and "Retry-After" not in response.headers
            if response.status_code not in TRANSIENT_STATUS or final_409:
                return response
            reason = f"{response.status_code} {_code(response)}"
            pause = _retry_after(response) or delay
            if time.monotonic() + pause > deadline:
                return response
        except (requests.ConnectionError, requests.ReadTimeout) as exc:
            sent_upload = not repeatable and not _never_sent(exc)
            if sent_upload and IDEMPOTENCY_KEY not in (options.get("headers") or {}):
                raise click.ClickException(
                    f"the connection to {gateway} broke after the upload was sent, so it may have been "
                    "accepted; check with `recog status`, or run `recog submit-folder` again (it asks "
                    "the batch what it holds)"
                ) from exc
            reason, pause = f"cannot reach the gateway at {gateway}", delay
            if sent_upload:
                reason = "the connection broke; sending the upload again under its Idempotency-Key"
            if time.monotonic() + pause > deadline:
                raise click.ClickException(
                    f"cannot reach the gateway at {gateway} (tried for {retry_for:.0f} s): "
                    "is the stack up (make up)?"
                ) from exc
        on_wait(reason)
        time.sleep(pause)
        delay = min(delay * 2, MAX_DELAY)
        for part in options.get("files") or []:  # an open file is read again from its start
            handle = part[1][1] if isinstance(part, tuple) else None
            if hasattr(handle, "seek"):
                handle.seek(0)


def call(gateway: str, method: str, path: str, **options) -> dict:
    """One request to the gateway (waiting out outages), its answer checked."""
    return check(request(gateway, method, path, **options))


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when no byte reached the gateway (refused, or no connection in time)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectTimeout) or isinstance(reason, NewConnectionError)


def _retry_after(response: requests.Response) -> float | None:
    try:
        return min(max(float(response.headers["Retry-After"]), 0.0), MAX_DELAY)
    except (KeyError, ValueError):
        return None


def _code(response: requests.Response) -> str:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return response.reason or ""


def submit(
    gateway: str, path: Path, wait: float | None, model: str | None, retry_for: float = RETRY_FOR
) -> dict:
    params = {"wait": wait} if wait else {}
    data = {"model": model} if model else {}
    with path.open("rb") as fh:
        files = [("file", (path.name, fh))]
        return call(
            gateway,
            "POST",
            "/v1/jobs",
            retry_for=retry_for,
            params=params,
            data=data,
            files=files,
            headers=upload_headers(),
            timeout=(wait or 0) + 30,
        )


def status(gateway: str, job_id: str, wait: float | None, retry_for: float = RETRY_FOR) -> dict:
    params = {"wait": wait} if wait else {}
    return call(
        gateway, "GET", f"/v1/jobs/{job_id}", retry_for=retry_for, params=params, timeout=(wait or 0) + 10
    )


def cancel(gateway: str, some_id: str, retry_for: float = RETRY_FOR) -> dict:
    """Cancel a batch, or else the job, with that id: a cancel asked twice is asked once, so it
    is sent again freely."""
    options = {"retry_for": retry_for, "repeatable": True, "timeout": 30}
    response = request(gateway, "POST", f"/v1/batches/{some_id}/cancel", **options)
    if response.status_code in (400, 404):  # not a batch's id: perhaps a job's
        response = request(gateway, "POST", f"/v1/jobs/{some_id}/cancel", **options)
    return check(response)


def retry(gateway: str, batch_id: str, retry_for: float = RETRY_FOR) -> dict:
    """Queue a batch's failed jobs again. Not sent again after a connection broke: a second
    retry would find the same jobs queued, not failed, and answer 409 nothing_to_retry."""
    return call(gateway, "POST", f"/v1/batches/{batch_id}/retry", retry_for=retry_for, timeout=120)
