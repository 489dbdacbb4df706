"""Hold a request until its job is final without hammering Cassandra.

The worker announces a finished job on the job's Redis channel once its row is written, with the
columns that write set (shared/messaging.announcement): the waiter answers from them without
reading Cassandra, and reads the row itself every FALLBACK_POLL_SECONDS in case an announcement was
lost (every half second while Redis is down), and for a failure (the row then says more).
"""

from __future__ import annotations

import threading
import time
import uuid

import redis

from shared.jobs import CANCELLED, FAILED, FINAL_STATES
from shared.messaging import job_channel, read_announcement

FALLBACK_POLL_SECONDS = 2.0
CONFIRM_SECONDS = 1.0


class JobWatch:
    """Subscribed to one job's channel. Made before the job is queued, it cannot miss the
    announcement, so a new job's row need not be read first."""

    def __init__(self, client: redis.Redis, job_id: uuid.UUID) -> None:
        self.job_id = job_id
        self._channel = job_channel(str(job_id))
        self._client = client
        self._pubsub = None
        self._subscribe()

    def _subscribe(self) -> None:
        """Subscribed once Redis confirmed it: redis-py may reconnect a dropped connection inside
        subscribe() without a word, and only the confirmation says the subscription is live. The
        thread's kept connection may be one Redis closed (idle past its timeout): then once more
        on a new one, before falling back to reading the row."""
        for _ in range(2):
            try:
                pubsub = _thread_pubsub(self._client)
                pubsub.subscribe(self._channel)
                if _next(pubsub, "subscribe", self._channel, CONFIRM_SECONDS) is not None:
                    self._pubsub = pubsub
                    return
                raise redis.TimeoutError(f"Redis did not confirm the subscription in {CONFIRM_SECONDS} s")
            except redis.RedisError:
                _forget()
        self._pubsub = None

    def until_final(self, services, row: dict, timeout: float) -> dict:
        """The job once final, or row as it stands when timeout runs out. row: the job as known
        now (the row read, or what the gateway just wrote)."""
        deadline = time.monotonic() + timeout
        while row["status"] not in FINAL_STATES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            fields = self._announced(min(left, FALLBACK_POLL_SECONDS))
            if fields is not None and fields["status"] not in (FAILED, CANCELLED):
                return {**row, **fields}
            # No announcement, a failure or a cancel: the row is read (their announcement lacks
            # what the row may hold from before, such as when the job started or its cancel).
            row = services.store.get_job(self.job_id) or row
        return row

    def close(self) -> None:
        """Unsubscribed, the connection stays this thread's for its next wait."""
        if self._pubsub is not None:
            try:
                self._pubsub.unsubscribe(self._channel)
            except redis.RedisError:
                self._drop()

    def _announced(self, seconds: float) -> dict | None:
        """The announced columns; None when none came within seconds (or came without them)."""
        if self._pubsub is not None:
            try:
                message = _next(self._pubsub, "message", self._channel, seconds)
                return None if message is None else read_announcement(message["data"])
            except redis.RedisError:
                # Redis closed it (an unsubscribed connection idle past Redis's timeout, say): a
                # new one, and the caller reads the row once for what the old one may have missed.
                self._drop()
                self._subscribe()
                if self._pubsub is not None:
                    return None
        time.sleep(min(seconds, 0.5))
        return None

    def _drop(self) -> None:
        _forget()
        self._pubsub = None


# One pub/sub connection per gateway thread, kept between waits: redis-py closes a PubSub's
# connection when the PubSub is closed, and a connect, a login and a close for every waited request
# cost the gateway about a tenth of its CPU at 32 clients (bench/throughput.py --profile).
_CONNECTIONS = threading.local()


def _thread_pubsub(client: redis.Redis):
    held = getattr(_CONNECTIONS, "held", None)
    if held is None or held[0] is not client:  # another app's client (tests run several)
        if held is not None:
            held[1].close()
        held = _CONNECTIONS.held = (client, client.pubsub())
    return held[1]


def _forget() -> None:
    held = _CONNECTIONS.__dict__.pop("held", None)
    if held is not None:
        held[1].close()


def _next(pubsub, kind: str, channel: str, seconds: float) -> dict | None:
    """The first message of that kind ("subscribe", "message") on that channel within seconds, or
    None. Others are passed over: confirmations of (un)subscriptions, and messages of a job this
    thread waited for before."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=left)
        if message is not None and message["type"] == kind:
            name = message["channel"]
            if (name.decode() if isinstance(name, bytes) else name) == channel:
                return message
    return None


def wait_for_final(services, job_id: uuid.UUID, timeout: float) -> dict | None:
    """A job made earlier: the row once final, or as it stands when timeout runs out (None if
    unknown). Read after subscribing, so an announcement between the two is not missed."""
    watch = JobWatch(services.redis, job_id)
    try:
        row = services.store.get_job(job_id)
        return None if row is None else watch.until_final(services, row, timeout)
    finally:
        watch.close()
