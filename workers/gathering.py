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
each time the consumer starts.
"""

from __future__ import annotations

import logging

from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

from shared.messaging import read_message, send_single_job

log = logging.getLogger(__name__)

# How often a job may be sent again after a transient failure or a dead pool process.
MAX_ATTEMPTS = 8


class GatheredBatches(Batches):
    """For tasks declared acks_late: a request is acknowledged once its batch ran, or was sent
    again after its pool process died."""

    def Strategy(self, task, app, consumer):
        handler = super().Strategy(task, app, consumer)
        if self._tref is not None:
            self._tref.cancel()
        # Whatever the buffer holds: a tick that finds it empty cancels the timer again.
        self._tref = consumer.timer.call_repeatedly(self.flush_interval, self._do_flush)
        return handler

    def flush(self, requests):
        requests = list(requests)

        def ran(_result) -> None:
            for request in requests:
                request.acknowledge()

        def lost(einfo) -> None:
            log.error(
                "a pool process died running %d gathered jobs; sending them again: %s",
                len(requests),
                getattr(einfo, "exception", einfo),
            )
            send_all_again(self.app, requests)

        return self._pool.apply_async(
            apply_batches_task,
            (self, ([SimpleRequest.from_request(r) for r in requests],), 0, None),
            callback=ran,
            error_callback=lost,
        )


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
            again = message.resend_alone() if message.alone else message.next_attempt(alone=True)
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
