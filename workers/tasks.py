"""Celery tasks: turn messages into calls of workers.pipeline; retry only what is transient."""

from __future__ import annotations

import logging

import redis
from cassandra import OperationTimedOut, Timeout, Unavailable
from cassandra.cluster import NoHostAvailable
from celery import Task, shared_task

from shared.messaging import TASK_RECOGNISE
from workers.pipeline import fail_jobs, run_jobs
from workers.runtime import get_runtime

log = logging.getLogger(__name__)

TRANSIENT = (NoHostAvailable, OperationTimedOut, Timeout, Unavailable, redis.ConnectionError)


class JobTask(Task):
    """When a task finally fails, its jobs are marked failed with the reason, never left running."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        try:
            runtime = get_runtime(self.app.recog_settings)
            fail_jobs(
                runtime,
                [args[0]],
                self.request.hostname or "worker",
                f"recognition failed: {type(exc).__name__}: {exc}",
            )
        except Exception:  # the store itself is down: the message stays for redelivery
            log.exception("could not record failure of task %s", task_id)


@shared_task(
    name=TASK_RECOGNISE,
    bind=True,
    base=JobTask,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=8,
)
def recognise(self, job: dict) -> None:
    run_jobs(get_runtime(self.app.recog_settings), [job], self.request.hostname or "worker")
