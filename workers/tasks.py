"""Celery tasks: turn messages into calls of workers.pipeline; retry only what is transient.

`recog.recognise` carries one single-image job and is gathered by celery-batches into one model
call of up to RECOG_MAX_BATCH jobs, flushed as soon as a pool process is free for it
(workers/gathering.py).
`recog.recognise_chunk` carries a chunk of a bulk submission, already one model call's worth.
Both are registered by the app factory, since their batching limits are settings.
"""

from __future__ import annotations

import logging
import time

import redis
from celery import Task
from celery.utils.time import get_exponential_backoff_interval

from shared.messaging import TASK_RECOGNISE, TASK_RECOGNISE_CHUNK, JobMessage, read_message, send_single_job
from shared.store import StoreUnavailable
from workers import WorkerApp
from workers.alone import fail_chunk, run_alone, run_chunk
from workers.batch_events import report_flush
from workers.gathering import MAX_ATTEMPTS, GatheredBatches
from workers.pipeline import end_cancelled, fail_jobs, run_jobs

log = logging.getLogger(__name__)

TRANSIENT = (StoreUnavailable, redis.ConnectionError)
RETRY_DELAY_MAX = 30  # seconds: the backoff's ceiling, for chunks and single jobs alike


class ChunkTask(Task):
    """When a chunk finally fails, its open jobs are marked failed with the reason, never left running.
    A chunk past the time limit is handed back to Redis, as one whose process died is, to run
    again one image at a time (workers/alone.py), not acknowledged with its jobs left running."""

    acks_on_failure_or_timeout = False

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        try:
            messages = [JobMessage.from_dict(raw) for raw in args[0]]
            # Every attempt's error: the messages carry the earlier ones (a chunk's all alike).
            earlier = messages[0].errors if messages else ()
            if isinstance(exc, TRANSIENT):
                error = gave_up(self.request.retries + 1, [*earlier, error_text(exc)])
            else:
                error = "; ".join([*earlier, f"recognition failed: {error_text(exc)}"])
            fail_chunk(self.app.runtime, messages, self.request.hostname or "worker", error)
        except Exception:  # the store is down: its jobs stay open, and the sweeper sends them again
            log.exception("could not record failure of task %s", task_id)


def register_tasks(app: WorkerApp) -> None:
    # Not shared: a task Celery shares is added, with its first app's closure, to every app made
    # after it in the process, ahead of that app's own (tests make several).
    @app.task(
        name=TASK_RECOGNISE,
        shared=False,
        base=GatheredBatches,
        acks_late=True,
        flush_every=app.settings.max_batch,
        max_wait_ms=app.settings.max_wait_ms,
    )
    def recognise(requests) -> None:
        started = time.time()
        hostname = requests[0].hostname or "worker"
        run_gathered(app, [request.args[0] for request in requests], hostname)
        report_flush(app, requests, started, hostname)

    @app.task(name=TASK_RECOGNISE_CHUNK, shared=False, bind=True, base=ChunkTask, max_retries=MAX_ATTEMPTS)
    def recognise_chunk(self, messages: list[dict]) -> None:
        parsed = [JobMessage.from_dict(raw) for raw in messages]
        try:
            run_chunk(self.app.runtime, parsed, self.request.hostname or "worker", self.request.retries)
        except TRANSIENT as exc:
            # Celery's autoretry would send the same messages again: these carry this attempt's
            # error too, so a chunk that runs out of attempts fails its jobs with all of them.
            again = [m.failed_with(error_text(exc)).to_dict() for m in parsed]
            wait = get_exponential_backoff_interval(
                1, self.request.retries, RETRY_DELAY_MAX, full_jitter=True
            )
            raise self.retry(args=[again], exc=exc, countdown=wait) from exc


def run_gathered(app: WorkerApp, raw_messages: list[dict], worker: str) -> None:
    """celery-batches acknowledges a flushed batch whatever happens, so failures are handled here:
    a transient one (the store down, even while this process builds its runtime) sends each job
    again later, anything else fails the jobs with the reason."""
    messages = _readable(raw_messages)
    try:
        spent = [m for m in messages if m.attempt > MAX_ATTEMPTS]
        if spent:  # sent again by a main process (workers.gathering), which cannot fail them itself
            _, spent = end_cancelled(app.runtime, spent, worker)  # never undo a result
            for m in spent:
                fail_jobs(app.runtime, [m], worker, gave_up(m.attempt, m.errors))
        fresh = [m for m in messages if m.attempt <= MAX_ATTEMPTS]
        together = [m for m in fresh if not m.alone]
        if together:
            run_jobs(app.runtime, together, worker)
        # After the rest, so a poison image that kills this process again takes no neighbour along.
        run_alone(app.runtime, [m for m in fresh if m.alone], worker)
    except TRANSIENT as exc:
        log.warning("transient failure on %d jobs, sending them again: %s", len(messages), exc)
        for message in messages:
            again = message.next_attempt(error_text(exc))
            if again.attempt > MAX_ATTEMPTS and _fail_quietly(app, again, worker):
                continue
            send_single_job(app, app.settings, again, countdown=min(2**again.attempt, RETRY_DELAY_MAX))
    except Exception as exc:
        log.exception("recognition failed for %d jobs", len(messages))
        # Only the open ones: a copy of a finished job (a duplicate delivery) keeps its result.
        fail_jobs(
            app.runtime,
            end_cancelled(app.runtime, messages, worker)[1],
            worker,
            f"recognition failed: {error_text(exc)}",
        )


def _readable(raw_messages: list[dict]) -> list[JobMessage]:
    """The messages that parse; one that does not (no job id to fail) is logged and dropped."""
    messages = []
    for raw in raw_messages:
        message = read_message(raw)
        if message is None:
            log.error("dropped an unreadable task message %r", raw)
        else:
            messages.append(message)
    return messages


def _fail_quietly(app: WorkerApp, message: JobMessage, worker: str) -> bool:
    """False when the store could not take even the failure: the job is sent again."""
    try:
        fail_jobs(app.runtime, [message], worker, gave_up(message.attempt, message.errors))
    except TRANSIENT:
        return False
    return True


def gave_up(attempts: int, errors) -> str:
    """The error of a job out of attempts (its first run and MAX_ATTEMPTS more): each one's, in
    order, as far as its messages carried them."""
    tried = "; ".join(f"{n}: {error}" for n, error in enumerate(errors, 1))
    return f"gave up after {attempts} attempts" + (f" ({tried})" if tried else "")


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
