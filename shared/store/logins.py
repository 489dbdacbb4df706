"""The service's own Cassandra login, made the first time from Cassandra's default superuser.

A Cassandra started with PasswordAuthenticator has one login, cassandra/cassandra, made a few
seconds after its first start. `recog schema` logs in as RECOG_CASSANDRA_USERNAME; refused, it
logs in as the default, makes that user (a superuser: it creates the keyspace and tables), and
drops the default, whose password everyone knows.
"""

from __future__ import annotations

import logging
import re
import time

from cassandra.cluster import NoHostAvailable

from shared.settings import Settings, SettingsError
from shared.store.session import LoginRefused, connect

log = logging.getLogger(__name__)

DEFAULT = "cassandra"  # the default superuser's name and password
# Inlined into CREATE USER (its name and password cannot be bound): a plain name only.
USER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")


def ensure_login(settings: Settings, timeout: float = 180) -> bool:
    """True if the user was made now. A Cassandra without PasswordAuthenticator takes any login."""
    if not settings.cassandra_username:
        return False
    if not USER_NAME.fullmatch(settings.cassandra_username):
        raise SettingsError("RECOG_CASSANDRA_USERNAME must be a letter then letters, digits or '_'")
    if settings.cassandra_username == DEFAULT:
        raise SettingsError(f"RECOG_CASSANDRA_USERNAME is {DEFAULT!r}, the login this drops: choose another")
    default = settings.replace(cassandra_username=DEFAULT, cassandra_password=DEFAULT)
    deadline = time.monotonic() + timeout
    while True:
        try:
            connect(settings)[0].shutdown()
            return False  # made already
        except (LoginRefused, NoHostAvailable) as refused:
            last = refused
        try:
            cluster, session = connect(default)
        except (LoginRefused, NoHostAvailable) as exc:
            # Cassandra 2.1 makes its default login about 10 s after its first start.
            if time.monotonic() > deadline:
                if not isinstance(last, LoginRefused):
                    raise  # Cassandra never answered (down, or TLS refused): that, not a login
                raise LoginRefused(
                    f"{last}; nor could the default superuser log in to make that user: {exc}"
                ) from exc
            time.sleep(2)
            continue
        try:
            password = settings.cassandra_password.replace("'", "''")
            user = settings.cassandra_username
            session.execute(
                f"CREATE USER IF NOT EXISTS {user} WITH PASSWORD '{password}' SUPERUSER", timeout=30
            )
        finally:
            cluster.shutdown()
        break
    cluster, session = connect(settings)
    try:
        session.execute(f"DROP USER IF EXISTS {DEFAULT}", timeout=30)
    finally:
        cluster.shutdown()
    log.info("made the Cassandra user %s and dropped the default superuser", settings.cassandra_username)
    return True
