"""Work a pool process died on, run again one image at a time, with every start kept in Cassandra.

A pool process dies under a job when its image crashes the decoder, outgrows the memory, or runs
past RECOG_TASK_TIME_LIMIT (the pool then kills it). Redis hands the very same chunk message back
(task_reject_on_worker_lost), or workers.gathering sends gathered single jobs again marked alone,
so no count in a message can say how often this happened. Each start is written to Cassandra
first (work_starts) instead:

- a chunk begun more often than Celery retried it knowingly lost a pool process in one of those
  starts: it runs again one image at a time;
- an image begun alone KILLED_ALONE times that is still not final stopped its process each time:
  it is failed with a message saying so, and its neighbours all end done.
"""

from __future__ import annotations

import logging

from shared.jobs import Outcome
from shared.messaging import JobMessage
from workers.counting import count_parts
from workers.gathering import MAX_ATTEMPTS
from workers.pipeline import end_cancelled, fail_jobs, first_send, run_jobs

log = logging.getLogger(__name__)

KILLED_ALONE = 2

POISON = (
    "this image stopped the worker process each of the {n} times it was recognised on its own "
    "(a crash or an out-of-memory kill while decoding it, or RECOG_TASK_TIME_LIMIT); "
    "it is not tried again"
)
CHUNK_KEEPS_DYING = (
    "the chunk this image came in stopped its worker process {n} times, more than its images "
    "alone can explain; the worker's log says why"
)


def run_chunk(runtime, messages: list[JobMessage], worker: str, retries: int) -> None:
    """retries: how often Celery sent this chunk again after a failure it caught (the store down).
    However it ended, the parts of the batch it touched are counted again."""
    count_parts(runtime.store, messages, _run_chunk(runtime, messages, worker, retries))


def _run_chunk(runtime, messages: list[JobMessage], worker: str, retries: int) -> list[Outcome]:
    work_id = messages[0].work_id if messages else None
    if work_id is None:  # queued by an earlier version: nothing to count its starts by
        return run_jobs(runtime, messages, worker)
    earlier = runtime.store.start_work(work_id, worker)
    died = earlier - retries
    if earlier == 0 and all(first_send(m) for m in messages):
        # The chunk's first start ever, counted in Cassandra whoever delivered it: none of its
        # jobs can be final yet, so their statuses need not be read (64 reads a chunk).
        return run_jobs(runtime, messages, worker, unstarted={m.job_id for m in messages})
    if died <= 0:
        return run_jobs(runtime, messages, worker)
    # Beyond what its images alone can explain: each open one killing its quota, the first whole
    # run, and slack for starts a flapping store ended without Celery counting a retry (the
    # sweeper's resend starts at none) or images that died and were failed before this resend.
    elif died > KILLED_ALONE * len(messages) + 1 + MAX_ATTEMPTS:
        cancelled, left = end_cancelled(runtime, messages, worker)
        log.error("chunk %s lost a pool process in %d starts; failing %d open jobs", work_id, died, len(left))
        return cancelled + fail_jobs(runtime, left, worker, CHUNK_KEEPS_DYING.format(n=died))
    log.warning("chunk %s lost a pool process in %d starts: one image at a time now", work_id, died)
    return run_alone(runtime, messages, worker)


def fail_chunk(runtime, messages: list[JobMessage], worker: str, error: str) -> None:
    """A chunk Celery gave up on: its open jobs fail with the reason (those cancelled end so), and
    those already finished (by an earlier run, or by this one before a later step failed) keep
    their results."""
    cancelled, left = end_cancelled(runtime, messages, worker)
    count_parts(
        runtime.store, messages, cancelled + (fail_jobs(runtime, left, worker, error) if left else [])
    )


def run_alone(runtime, messages: list[JobMessage], worker: str) -> list[Outcome]:
    """Each open job in a model call of its own, its start recorded first; those cancelled end so
    without a start."""
    if not messages:
        return []
    outcomes, left = end_cancelled(runtime, messages, worker)
    for m in left:
        earlier = runtime.store.start_work(m.job_id, worker)
        if earlier >= KILLED_ALONE:
            log.error("job %s stopped its worker process %d times on its own: failed", m.job_id, earlier)
            outcomes += fail_jobs(runtime, [m], worker, POISON.format(n=earlier))
        else:
            outcomes += run_jobs(runtime, [m], worker)
    return outcomes
