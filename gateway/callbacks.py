"""The callback_url form field of POST /v1/jobs and POST /v1/batches, and the callback block of a
job's or batch's view."""

from __future__ import annotations

import uuid

from flask import request

from gateway.auth import caller
from gateway.errors import ApiError
from shared import callbacks
from shared.jobs import iso, minute_bucket, utcnow
from shared.store.callbacks import Delivery, Pending


def asked_for(services) -> str | None:
    """The form's callback_url, checked against RECOG_CALLBACK_ALLOW; None when none was sent."""
    url = request.form.get("callback_url", "").strip()
    if not url:
        return None
    try:
        callbacks.resolve(url, services.settings.callback_allow)
    except callbacks.CallbackRefused as exc:
        raise ApiError(422, "bad_callback_url", str(exc)) from None
    key = services.keys.find(caller().key_id)
    if key is None or not key.webhook_secret:
        raise ApiError(
            422,
            "no_webhook_secret",
            f"this key ({caller().name!r}) has no webhook secret to sign callbacks with: it was made "
            f"before webhooks. Give it one with `recog keys webhook-secret {caller().name}`",
        )
    return url


def register(services, kind: str, subject: uuid.UUID, url: str | None) -> None:
    """Before the work is queued, so a notifier that finds it ended finds its callback too."""
    if url is None:
        return
    pending = Pending(subject, kind, url, caller().key_id)
    ttl = services.settings.callback_hours * 3600
    services.store.callbacks.register(pending, minute_bucket(utcnow()), ttl)


def mark(services, kind: str, subject: uuid.UUID, url: str | None) -> None:
    """After the row is written: the view then shows the callback's tries."""
    if url is not None:
        services.store.callbacks.mark(kind, subject, url)


def view(services, row: dict) -> dict | None:
    """The callback block of a job or batch row: None when it has none."""
    url = row.get("callback_url")
    if not url:
        return None
    return delivery_view(url, services.store.callbacks.delivery(row.get("job_id") or row["batch_id"]))


def not_tried(url: str | None) -> dict | None:
    """The callback block of a job that has just ended: its callback not tried yet."""
    return None if url is None else delivery_view(url, Delivery())


def delivery_view(url: str, delivery: Delivery) -> dict:
    if delivery.delivered_at:
        state = callbacks.DELIVERED
    elif delivery.gave_up_at:
        state = callbacks.GAVE_UP
    else:
        state = callbacks.RETRYING if delivery.attempts else callbacks.WAITING
    return {
        "url": url,
        "state": state,
        "attempts": [
            {"at": iso(a.at), "status_code": a.status_code, "error": a.error, "ms": a.ms}
            for a in delivery.attempts
        ],
        "next_attempt_at": iso(delivery.next_at) if state == callbacks.RETRYING else None,
        "delivered_at": iso(delivery.delivered_at),
    }
