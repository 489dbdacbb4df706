"""What a worker holds, renewed in Cassandra as its lease: the sweeper leaves that work alone.

A task message counts as held from the moment this worker's main process receives it (Celery's
task_received, which celery-batches also sends for the jobs it gathers) until it is acknowledged
or rejected. The lease lives RECOG_LEASE_SECONDS and is renewed every third of that, so a
SIGKILLed worker's claim is gone within one lease. Also reported: the newest send this worker
has read from each queue; Redis queues are first in, first out, so work sent well before that
and neither held nor final was lost.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime

from celery import bootsteps

from shared.jobs import as_utc
from shared.messaging import TASK_RECOGNISE, read_message
from shared.store import StoreUnavailable
from workers.store_connection import StoreConnection

log = logging.getLogger(__name__)


class HeldWork:
    """The requests received and not yet acknowledged, and the newest send read from each queue.

    Filled by the consumer thread, read by the lease thread; a request held longer than the
    visibility timeout is not claimed any more (Redis would deliver it again by then anyway).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[int, tuple[object, float, uuid.UUID]] = {}
        self.newest_sent: dict[str, datetime] = {}
        # Set on every receipt: the lease is renewed at once (at most once a second), so work is
        # claimed long before the sweeper would judge it unheld (one lease after its send).
        self.arrived = threading.Event()

    def received(self, request) -> None:
        messages = _messages(request)
        work_ids = {m.work_id for m in messages if m.work_id is not None}
        if not work_ids:  # sent by an earlier version: nothing to claim
            return
        kind = "single" if request.name == TASK_RECOGNISE else "chunk"
        sent = max((as_utc(m.sent_at) for m in messages if m.sent_at is not None), default=None)
        with self._lock:
            self._requests[id(request)] = (request, time.monotonic(), work_ids.pop())
            if sent is not None and (kind not in self.newest_sent or sent > self.newest_sent[kind]):
                self.newest_sent[kind] = sent
        self.arrived.set()

    def forget_all(self) -> None:
        """The connection to Redis broke: Celery drops the requests it had prefetched without
        acknowledging them, and nothing received on the old connection can be acknowledged any
        more. Claiming them would keep the sweeper off them until the visibility timeout; a job
        among them that still finishes here is final before the sweeper looks (one lease on)."""
        with self._lock:
            self._requests.clear()

    def snapshot(self, max_age: float) -> tuple[set[uuid.UUID], dict[str, datetime]]:
        """(work ids held, {"single" or "chunk": the newest send read from that kind's queue}),
        dropping what was acknowledged since."""
        now = time.monotonic()
        with self._lock:
            for key, (request, since, _) in list(self._requests.items()):
                if request.acknowledged or now - since > max_age:
                    del self._requests[key]
            return {work_id for _, _, work_id in self._requests.values()}, dict(self.newest_sent)


def _messages(request) -> list:
    """The job messages a request carries: one for a single job, a list for a chunk."""
    try:
        first = request.args[0]
    except (AttributeError, IndexError, TypeError):
        return []
    raw = first if isinstance(first, list) else [first]
    return [m for m in map(read_message, raw) if m is not None]


HELD = HeldWork()


class ForgetHeldOnReconnect(bootsteps.StartStopStep):
    """A step of the worker's consumer: Celery stops its consumer steps when the connection to
    the broker breaks (before connecting again) and at shutdown, and either way the requests
    received so far will not be acknowledged through it."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def stop(self, consumer) -> None:
        HELD.forget_all()


def start_renewing(app, instance: str) -> threading.Thread:
    """A daemon thread in the worker's main process writing this worker's lease."""
    settings = app.settings
    every = settings.lease_seconds / 3

    def loop() -> None:
        connection = StoreConnection(settings)
        while True:
            try:
                held, newest_sent = HELD.snapshot(settings.visibility_timeout)
                connection.get().renew_lease(instance, held, newest_sent, settings.lease_seconds)
            except StoreUnavailable as exc:
                log.warning("could not renew this worker's lease, trying again: %s", exc)
                connection.drop()
            except Exception:
                log.exception("could not renew this worker's lease")
            if HELD.arrived.wait(every):
                HELD.arrived.clear()
                time.sleep(1.0)  # at most one renewal a second while work arrives

    thread = threading.Thread(target=loop, name="recog-lease", daemon=True)
    thread.start()
    return thread
