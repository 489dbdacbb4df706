"""Talk to the gateway over HTTP and turn its JSON errors into readable messages."""

from __future__ import annotations

from pathlib import Path

import click
import requests


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


def call(gateway: str, method: str, path: str, **options) -> dict:
    """One request to the gateway, its answer checked; an unreachable gateway is a clear error."""
    try:
        response = requests.request(method, f"{gateway}{path}", **options)
    except requests.ConnectionError as exc:
        raise click.ClickException(
            f"cannot reach the gateway at {gateway}: is the stack up (make up)?"
        ) from exc
    return check(response)


def submit(gateway: str, path: Path, wait: float | None, model: str | None) -> dict:
    params = {"wait": wait} if wait else {}
    data = {"model": model} if model else {}
    with path.open("rb") as fh:
        files = {"file": (path.name, fh)}
        return call(
            gateway, "POST", "/v1/jobs", params=params, data=data, files=files, timeout=(wait or 0) + 30
        )


def status(gateway: str, job_id: str, wait: float | None) -> dict:
    params = {"wait": wait} if wait else {}
    return call(gateway, "GET", f"/v1/jobs/{job_id}", params=params, timeout=(wait or 0) + 10)
