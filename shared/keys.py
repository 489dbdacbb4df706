"""API keys: made once, shown once, kept only as a hash; each names its tenant and scopes.

A key reads `recog_<key id>_<secret>`. The key id finds its row; the secret is compared with
the row's sha256 of it. A plain sha256 rather than a slow password hash: the secret is 256 random
bits, which no guessing reaches, and the gateway checks a key on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

SUBMIT, READ, ADMIN = "submit", "read", "admin"
SCOPES = (SUBMIT, READ, ADMIN)
DEFAULT_SCOPES = (SUBMIT, READ)
PREFIX = "recog_"
WEBHOOK_PREFIX = "whsec_"
# Names and tenants are typed on command lines and shown in listings: short, plain words.
NAME_FORMAT = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
KEY_FORMAT = re.compile(rf"{PREFIX}([0-9a-f]{{16}})_([A-Za-z0-9_-]{{20,128}})")
# The key `make up` makes for the person at this machine, and the files in its state folder that
# keep it (mode 600): the key, where the CLI finds it, and the header for `curl -H @FILE`, which
# keeps it off curl's command line.
LOCAL_KEY, LOCAL_KEY_FILE, LOCAL_HEADER_FILE = "local", "api-key", "api-key.header"


class KeySpecError(ValueError):
    """A name, tenant or scope that cannot be used; the message says what can."""


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    tenant: str
    scopes: frozenset[str]
    secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None = None
    # Signs the webhooks of what this key submits (shared/callbacks.py). Kept as it is, not
    # hashed: signing needs it. None for a key made before webhooks.
    webhook_secret: str | None = field(default=None, repr=False)

    @property
    def live(self) -> bool:
        return self.revoked_at is None

    def opens_with(self, secret: str) -> bool:
        return self.live and hmac.compare_digest(self.secret_sha256, digest(secret))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = KEY_FORMAT.fullmatch(key.strip())
    return (match[1], match[2]) if match else None


def new_key(name: str, tenant: str, scopes: tuple[str, ...], now: datetime) -> tuple[ApiKey, str]:
    """A key's row and the key itself, which is never stored."""
    check_name("name", name)
    check_name("tenant", tenant)
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise KeySpecError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    row = ApiKey(key_id, name, tenant, frozenset(scopes), digest(secret), now, None, new_webhook_secret())
    return row, f"{PREFIX}{key_id}_{secret}"


def new_webhook_secret() -> str:
    return WEBHOOK_PREFIX + secrets.token_urlsafe(32)


def check_name(what: str, value: str) -> None:
    if not NAME_FORMAT.fullmatch(value):
        raise KeySpecError(
            f"{what} {value!r} must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def create(table, name: str, tenant: str | None, scopes: tuple[str, ...], now: datetime) -> str:
    """A new key under a name no live key has (checked by reading the table: two operators
    making the same name at the same moment can both succeed; `recog keys list` shows it)."""
    if any(k.name == name for k in table.every() if k.live):
        raise KeySpecError(f"a live key is named {name!r} already; revoke it first or pick another name")
    row, key = new_key(name, tenant or name, scopes, now)
    table.add(row)
    return key


def new_webhook_secret_for(table, name: str) -> str:
    """A new webhook secret for the live key of that name (the old one stops signing at once)."""
    live = [k for k in table.every() if k.name == name and k.live]
    if not live:
        raise KeySpecError(f"no live key is named {name!r}; `recog keys list` shows them")
    secret = new_webhook_secret()
    for k in live:
        table.set_webhook_secret(k.key_id, secret)
    return secret


def revoke(table, name: str, now: datetime) -> int:
    """Revokes every live key of that name; how many there were."""
    live = [k for k in table.every() if k.name == name and k.live]
    for k in live:
        table.revoke(k.key_id, now)
    return len(live)
