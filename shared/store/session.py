"""Connecting to Cassandra, the driver's errors as StoreUnavailable, and prepared statements:
one place for the driver's settings and its known quirks."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cassandra import (
    AuthenticationFailed,
    ConsistencyLevel,
    CoordinationFailure,
    OperationTimedOut,
    Timeout,
    Unavailable,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.connection import ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
from cassandra.query import PreparedStatement, dict_factory

from shared.settings import Settings
from shared.store import StoreUnavailable

# What "Cassandra is unreachable or overloaded right now" looks like from the driver. Errors that
# retrying cannot cure (an unknown table, a refused query, bad credentials) are left out: they are
# bugs or misconfiguration, and fail loudly instead of being retried as an outage.
_UNAVAILABLE = (
    NoHostAvailable,
    OperationTimedOut,
    Unavailable,
    Timeout,
    CoordinationFailure,
    ConnectionException,
)


@contextmanager
def translated() -> Iterator[None]:
    """The driver's "unreachable or overloaded" errors leave the Cassandra adapters as StoreUnavailable."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"Cassandra is not answering: {type(exc).__name__}: {exc}") from exc


RECONNECT_MAX_SECONDS = 5.0


class LoginRefused(Exception):
    """Cassandra refused the login: a setting to fix, not an outage to wait out."""


def connect(settings: Settings, keyspace: str | None = None) -> tuple[Cluster, Session]:
    """A cluster and session; call after any fork, never at import."""
    try:
        return _connect(settings, keyspace, settings.cassandra_protocol_version)
    except NoHostAvailable as exc:
        if exc.errors and all(isinstance(e, AuthenticationFailed) for e in exc.errors.values()):
            who = settings.cassandra_username or "no user (RECOG_CASSANDRA_USERNAME is empty)"
            raise LoginRefused(
                f"Cassandra refused the login of {who}: check RECOG_CASSANDRA_USERNAME and "
                "RECOG_CASSANDRA_PASSWORD (`recog schema` makes that user the first time)"
            ) from exc
        # Cassandra 2.1 answers the driver's opening v5 offer with a generic server error
        # instead of a protocol error, so the driver never steps down by itself.
        if settings.cassandra_protocol_version or "unsupported protocol version" not in str(exc):
            raise
        return _connect(settings, keyspace, 3)


def _connect(settings: Settings, keyspace: str | None, protocol: int) -> tuple[Cluster, Session]:
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        consistency_level=getattr(ConsistencyLevel, settings.cassandra_consistency),
        request_timeout=10.0,
        row_factory=dict_factory,
    )
    cluster = Cluster(
        list(settings.cassandra_hosts),
        port=settings.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=3.0,
        control_connection_timeout=3.0,
        # The driver leaves Nagle's algorithm on: a request over ~4 KB (an image, a chunk's batch
        # of lines) then waited ~44 ms for a delayed ACK on every call (measured: 44 ms against
        # 1 ms for a 1 KB insert).
        sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        # The driver's default waits up to 10 minutes between tries to reach a node that went
        # down; once Cassandra is back after a crash, work should resume within seconds. An idle
        # process (one of the gateway's) notices a dead connection by this heartbeat, rather than
        # by failing its next request (default: every 30 s).
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=RECONNECT_MAX_SECONDS),
        idle_heartbeat_interval=RECONNECT_MAX_SECONDS,
        **({"protocol_version": protocol} if protocol else {}),
        **_security(settings),
    )
    try:
        session = cluster.connect(keyspace)
    except Exception:
        cluster.shutdown()
        raise
    return cluster, session


def _security(settings: Settings) -> dict:
    """The login and TLS the settings ask for, as the driver's Cluster options."""
    options: dict = {}
    if settings.cassandra_username:
        options["auth_provider"] = PlainTextAuthProvider(
            settings.cassandra_username, settings.cassandra_password
        )
    if settings.cassandra_tls:
        # Host names checked: the driver names each node by the address it dials, so a node's
        # certificate must name its address (its broadcast_rpc_address).
        options["ssl_context"] = ssl.create_default_context(cafile=settings.cassandra_tls_ca or None)
    return options


class Statements:
    """Prepares each CQL text once and runs it bound; session: called when first needed."""

    def __init__(self, session: Callable[[], Session]) -> None:
        self._session = session
        self._prepared: dict[str, PreparedStatement] = {}

    def prepare(self, text: str) -> PreparedStatement:
        if text not in self._prepared:
            self._prepared[text] = self._session().prepare(text)
        return self._prepared[text]

    def run(self, text: str, values: tuple):
        return self._session().execute(self.prepare(text), values)

    def run_async(self, text: str, values: tuple):
        return self._session().execute_async(self.prepare(text), values)

    def run_paged(self, text: str, values: tuple, page_size: int):
        """Rows fetched page_size at a time as the caller iterates."""
        statement = self.prepare(text).bind(values)
        statement.fetch_size = page_size
        return self._session().execute(statement)
