"""celery-batches' Batches, and what happens when the pool process running a gathered batch dies.

celery-batches hands a gathered batch to the pool with a callback for success only. A pool
process SIGKILLed or killed for memory mid-batch then leaves every request of that batch
unacknowledged: this worker's lease would claim them, and Redis keep them, until the visibility
timeout (an hour). Here each job of a lost batch is sent again with one attempt more, marked to run
alone (workers/alone.py, so one poison image cannot take its neighbours down again), then its
request is acknowledged; a job past MAX_ATTEMPTS is failed by the next process that gathers it.
The pool's time limit (RECOG_TASK_TIME_LIMIT) ends a gathered batch the same way.

And celery-batches 0.11 (the latest release) arms its flush timer only while it holds none; when
the connection to the broker breaks, Celery clears its event loop's timers, that one included, but
celery-batches still believes it armed, so gathered jobs sat unacknowledged, claimed by this
worker's lease, until it restarted (its issue 107, fixed after 0.11). The timer is armed again
each time the consumer starts, and the batches Celery dropped from the pool's queue with the
connection stop counting as running then (tests/integration/test_broker_restart.py).

And when to flush: celery-batches flushes every flush_interval, so a lone job waited for the timer,
and at 32 clients most flushes held one or two jobs, costing as much as the batch of one they
replaced (bench/flush_settings.py). Here a batch goes to the pool as soon as a pool process is free
for it, and jobs arriving while every process runs a gathered batch wait, gathering, until one
ends: a lone job starts at once, and under load the batches grow with the load (the adaptive
batching of Triton's dynamic batcher with no queue delay). A max_wait_ms above 0 holds jobs up to
that long (until the timer's next tick) even with a process free.
"""

from __future__ import annotations

import logging
import time

from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

from shared.messaging import read_message, send_single_job

log = logging.getLogger(__name__)

# How often a job may be sent again after a transient failure or a dead pool process.
MAX_ATTEMPTS = 8


# How often held jobs (sent with a countdown, as a retry is) are looked at when jobs are not held
# for company (max_wait_ms 0).
HELD_CHECK_SECONDS = 0.05
# How long past the task time limit a gathered batch with no result is taken for lost.
LOST_AFTER_LIMIT_SECONDS = 60


class GatheredBatches(Batches):
    """For tasks declared acks_late: a request is acknowledged once its batch ran, or was sent
    again after its pool process died.

    flush_every: the most jobs in one batch. max_wait_ms: how long at most a job waits for others
    while a pool process is free (0: not at all)."""

    max_wait_ms = 0

    def __init__(self) -> None:
        super().__init__()
        # Gathered batches handed to the pool and not ended yet (and when), against the pool's
        # processes. Every callback and timer runs in the worker's main thread.
        self._in_flight: dict = {}
        self._slots = 1

    @property
    def flush_interval(self) -> float:
        return self.max_wait_ms / 1000 if self.max_wait_ms else HELD_CHECK_SECONDS

    def Strategy(self, task, app, consumer):
        handler = super().Strategy(task, app, consumer)
        self._slots = consumer.pool.limit or 1
        self._forget_dropped_batches()
        if self._tref is not None:
            self._tref.cancel()
        # Whatever the buffer holds: a tick that finds it empty cancels the timer again.
        self._tref = consumer.timer.call_repeatedly(self.flush_interval, self._do_flush)
        if self.max_wait_ms:
            return handler

        def gather_or_start(*args, **kwargs) -> None:
            handler(*args, **kwargs)
            self._do_flush()

        return gather_or_start

    def _do_flush(self) -> None:
        """With every pool process busy, what was gathered waits for one to end (_ended)."""
        self._forget_lost_batches()
        if len(self._in_flight) < self._slots:
            super()._do_flush()

    def _forget_dropped_batches(self) -> None:
        """When the connection to the broker breaks, Celery empties the pool's queue before the
        consumer starts again (AsynPool.flush): a batch handed over whose acceptance by a process
        the main process had not yet read is dropped, and its callbacks never come. Counted as
        running, two such batches stopped every later single job until the time limit and a
        minute passed. Their jobs come back from Redis's redelivery or the sweeper (this worker's
        lease no longer claims them: workers/leases.py). Strategy also runs on a pool_restart
        command (off unless the worker enables it), with nothing dropped: a batch still queued
        then frees its slot a little early, and the warning below is wrong about why."""
        dropped = [result for result in self._in_flight if not result.ready() and not result.accepted()]
        for result in dropped:
            del self._in_flight[result]
        if dropped:
            log.warning(
                "%d gathered batches no pool process had taken were dropped with the connection to "
                "Redis; their jobs come back from Redis or the sweeper",
                len(dropped),
            )

    def _forget_lost_batches(self) -> None:
        """A batch whose callback never came frees its process once its result is ready, or past
        the time limit (which Celery stops enforcing on a batch when the broker connection breaks):
        neither should happen, and either would stop every later single job."""
        oldest = time.monotonic() - (self.app.conf.task_time_limit or 3600) - LOST_AFTER_LIMIT_SECONDS
        for result, handed_at in list(self._in_flight.items()):
            if result.ready() or handed_at < oldest:
                if not result.ready():
                    log.warning("a gathered batch outlived the time limit; its process counts as free")
                del self._in_flight[result]

    def _ended(self, result) -> None:
        self._in_flight.pop(result, None)
        if not self._buffer.empty():
            self._do_flush()

    def flush(self, requests):
        """What gathered while the pool was busy may be more than one batch: flush_every each."""
        requests = list(requests)
        for start in range(0, len(requests), self.flush_every):
            self._hand_over(requests[start : start + self.flush_every])

    def _hand_over(self, requests: list) -> None:
        # billiard logs and swallows what a callback raises: whatever happens, the process is
        # counted free again, and the next batch's flush comes after this one's requests are
        # seen to. The callbacks run later, in the main thread, once result is bound.
        def ran(_result) -> None:
            try:
                for request in requests:
                    request.acknowledge()
            finally:
                self._ended(result)

        def lost(einfo) -> None:
            try:
                log.error(
                    "a pool process died running %d gathered jobs; sending them again: %s",
                    len(requests),
                    getattr(einfo, "exception", einfo),
                )
                send_all_again(self.app, requests)
            finally:
                self._ended(result)

        result = self._pool.apply_async(
            apply_batches_task,
            (self, ([SimpleRequest.from_request(r) for r in requests],), 0, None),
            callback=ran,
            error_callback=lost,
        )
        if result is not None:  # None: the pool is closing (a warm shutdown), and runs nothing more
            self._in_flight[result] = time.monotonic()


def send_all_again(app, requests) -> None:
    """In the worker's main process: no store or model here, so even a job out of attempts goes
    back to the queue, to be failed with its reason by a pool process. Once one send fails Redis
    is taken to be down: the rest are handed back to Redis's own redelivery without trying, as
    each try would hold up this process's event loop for seconds."""
    sending = True
    for request in requests:
        if sending:
            sending = _send_again(app, request)
        else:
            _reject(request)


def _send_again(app, request) -> bool:
    message = read_message(request.args[0])
    try:
        if message is not None:
            # Already alone: Cassandra's count of its solo starts bounds it, and a count here too
            # would fail an innocent job that waited behind a few poison ones in the same flush.
            died = "its worker process died while it ran (a crash, the memory, or the time limit)"
            again = message.resend_alone() if message.alone else message.next_attempt(died, alone=True)
            send_single_job(app, app.settings, again)
    except Exception:
        log.exception("could not send job %s again", message.job_id if message else "?")
        _reject(request)
        return False
    request.acknowledge()
    return True


def _reject(request) -> None:
    try:
        request.reject(requeue=True)
    except Exception:  # the message stays unacknowledged: Redis redelivers it after the timeout
        log.exception("could not hand a job back to Redis")
