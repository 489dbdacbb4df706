"""Who is calling: every /v1 route (but the OpenAPI description) and /metrics need an API key,
sent as `Authorization: Bearer <key>`, with the scope the route needs (shared/keys.py)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from flask import Flask, current_app, g, request

from gateway.errors import ApiError
from shared.keys import ADMIN, READ, SUBMIT, ApiKey, split

PUBLIC = frozenset({"/v1/openapi.json"})
KEYS_REMEMBERED = 10_000
CHALLENGE = 'Bearer realm="recog"'
HOW = (
    "send an API key as 'Authorization: Bearer <key>'; `recog keys create NAME` makes one, and "
    "`make up` saved one in .recog/api-key"
)


@dataclass(frozen=True)
class Caller:
    key_id: str
    name: str
    tenant: str
    scopes: frozenset[str]

    def owns(self, tenant: str | None) -> bool:
        """Rows made before keys existed have no tenant: only an admin key reads them."""
        return tenant == self.tenant or (not tenant and ADMIN in self.scopes)

    def sees(self, row: dict | None) -> bool:
        """A job or batch row this caller may read. Another tenant's is answered as one that does
        not exist, so an id says nothing; a row whose first write expired (RECOG_RETENTION_DAYS)
        while a later one has not is gone too."""
        return row is not None and row.get("created_at") is not None and self.owns(row.get("tenant"))


class KeyRing:
    """The keys a gateway process looked up, each trusted for RECOG_KEY_CACHE_SECONDS: a request
    costs no Cassandra read for its key, and a revoked key is refused that long after at most."""

    def __init__(self, table, seconds: float) -> None:
        self._table, self._seconds = table, seconds
        self._seen: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key_id)
            if seen is not None:
                self._seen.move_to_end(key_id)
        if seen is not None and now - seen[0] < self._seconds:
            return seen[1]
        found = self._table().get(key_id)  # StoreUnavailable: a 503, the request was fine
        with self._lock:
            self._seen[key_id] = (now, found)
            self._seen.move_to_end(key_id)
            # Least recently used out first: a flood of made-up key ids pushes out only its own.
            while len(self._seen) > KEYS_REMEMBERED:
                self._seen.popitem(last=False)
        return found


def needed_scope() -> str | None:
    if request.path == "/metrics":
        return ADMIN
    if not request.path.startswith("/v1/") or request.path in PUBLIC:
        return None
    return READ if request.method in ("GET", "HEAD") else SUBMIT


def caller() -> Caller:
    return g.caller


def register(app: Flask) -> None:
    @app.before_request
    def _authenticate():
        scope = needed_scope()
        if scope is None:
            return
        g.caller = _identify()
        current_app.extensions["recog"].quotas.check_rate(g.caller.key_id)
        if scope not in g.caller.scopes:
            raise ApiError(
                403,
                "missing_scope",
                f"this key ({g.caller.name!r}) lacks the '{scope}' scope this request needs; "
                f"make one that has it with `recog keys create NAME --scopes {scope}`",
            )


def _identify() -> Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(
            401,
            "missing_api_key",
            f"this request needs an API key: {HOW}",
            headers={"WWW-Authenticate": CHALLENGE},
        )
    parts = split(token) if scheme.lower() == "bearer" else None
    key = current_app.extensions["recog"].keys.find(parts[0]) if parts else None
    if parts is None or key is None or not key.opens_with(parts[1]):
        raise ApiError(
            401,
            "bad_api_key",
            f"the API key is not one this service knows, or it was revoked: {HOW}",
            headers={"WWW-Authenticate": CHALLENGE + ', error="invalid_token"'},
        )
    return Caller(key.key_id, key.name, key.tenant, key.scopes)
