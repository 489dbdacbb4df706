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


def submit(gateway: str, path: Path, wait: float | None, model: str | None) -> dict:
    params = {"wait": wait} if wait else {}
    data = {"model": model} if model else {}
    with path.open("rb") as fh:
        response = _post(f"{gateway}/v1/jobs", params, data, fh, path.name, wait)
    return check(response)


def status(gateway: str, job_id: str, wait: float | None) -> dict:
    params = {"wait": wait} if wait else {}
    try:
        response = requests.get(f"{gateway}/v1/jobs/{job_id}", params=params, timeout=(wait or 0) + 10)
    except requests.ConnectionError as exc:
        raise click.ClickException(
            f"cannot reach the gateway at {gateway}: is the stack up (make up)?"
        ) from exc
    return check(response)


def _post(url, params, data, fh, name, wait):
    try:
        return requests.post(
            url, params=params, data=data, files={"file": (name, fh)}, timeout=(wait or 0) + 30
        )
    except requests.ConnectionError as exc:
        raise click.ClickException(f"cannot reach the gateway at {url}: is the stack up (make up)?") from exc
