"""The api_keys table: a row per key ever made, revoked keys kept (with when) for the record."""

from __future__ import annotations

from datetime import datetime

from shared.keys import ApiKey
from shared.store.session import Statements, translated

INSERT_KEY = """INSERT INTO api_keys (key_id, name, tenant, scopes, secret_sha256, created_at,
    webhook_secret) VALUES (?, ?, ?, ?, ?, ?, ?)"""
SELECT_KEY = "SELECT * FROM api_keys WHERE key_id = ?"
# Only the `recog keys` commands list every key: a table of one row per key, read by an operator.
SELECT_KEYS = "SELECT * FROM api_keys"
REVOKE_KEY = "UPDATE api_keys SET revoked_at = ? WHERE key_id = ?"
SET_WEBHOOK_SECRET = "UPDATE api_keys SET webhook_secret = ? WHERE key_id = ?"


class KeyTable:
    def __init__(self, statements: Statements) -> None:
        self._cql = statements

    def add(self, key: ApiKey) -> None:
        with translated():
            self._cql.run(
                INSERT_KEY,
                (
                    key.key_id,
                    key.name,
                    key.tenant,
                    set(key.scopes),
                    key.secret_sha256,
                    key.created_at,
                    key.webhook_secret,
                ),
            )

    def get(self, key_id: str) -> ApiKey | None:
        with translated():
            row = self._cql.run(SELECT_KEY, (key_id,)).one()
        return None if row is None else _key(row)

    def every(self) -> list[ApiKey]:
        with translated():
            rows = list(self._cql.run(SELECT_KEYS, ()))
        return sorted((_key(row) for row in rows), key=lambda k: (k.name, k.created_at))

    def revoke(self, key_id: str, at: datetime) -> None:
        with translated():
            self._cql.run(REVOKE_KEY, (at, key_id))

    def set_webhook_secret(self, key_id: str, secret: str) -> None:
        with translated():
            self._cql.run(SET_WEBHOOK_SECRET, (secret, key_id))


def _key(row: dict) -> ApiKey:
    return ApiKey(
        row["key_id"],
        row["name"],
        row["tenant"],
        frozenset(row["scopes"] or ()),
        row["secret_sha256"],
        row["created_at"],
        row["revoked_at"],
        row.get("webhook_secret"),
    )
