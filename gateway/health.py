"""Liveness (/healthz, with the version) and readiness (/readyz: Redis and Cassandra both answer)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from gateway.errors import RETRY_AFTER_SECONDS
from shared.version import service_version

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok", "version": service_version()})


@bp.get("/readyz")
def readyz():
    services = current_app.extensions["recog"]
    checks = {"redis": _check(services.redis.ping), "cassandra": _check(lambda: services.store.ping())}
    down = [name for name, result in checks.items() if result != "ok"]
    body = {"status": "ready" if not down else "not ready", "checks": checks}
    if down:
        body["message"] = f"{' and '.join(down)} not answering"
    if down:
        return jsonify(body), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return jsonify(body), 200


def _check(probe) -> str:
    try:
        probe()
    except Exception as exc:  # any failure means "not ready"; the text says which
        return f"error: {type(exc).__name__}: {exc}"[:300]
    return "ok"
