"""Liveness (/healthz, with the version) and readiness (/readyz: Redis and Cassandra both answer)."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify

from gateway.errors import RETRY_AFTER_SECONDS
from shared.version import service_version

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok", "version": service_version()})


@bp.get("/readyz")
def readyz():
    services = current_app.extensions["recog"]
    checks = {
        "redis": _check("redis", services.redis.ping),
        "cassandra": _check("cassandra", lambda: services.store.ping()),
    }
    down = [name for name, result in checks.items() if result != "ok"]
    body = {"status": "ready" if not down else "not ready", "checks": checks}
    if down:
        body["message"] = f"{' and '.join(down)} not answering"
    if down:
        return jsonify(body), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return jsonify(body), 200


def _check(name: str, probe) -> str:
    """'ok' or 'not answering': the exception's own text (hosts, ports, driver internals) goes
    to the gateway's log, not to whoever asks."""
    try:
        probe()
    except Exception as exc:  # any failure means "not ready"
        log.warning("readiness: %s is not answering: %s: %s", name, type(exc).__name__, exc)
        return "not answering"
    return "ok"
