"""Dynamic batching on the real worker: a job starts at once while a pool process is free for it,
and jobs that arrive while every process is busy gather into one model call."""

import contextlib
import os
import signal
import time
import uuid

from tests import images
from tests.integration.test_failures import pool_processes
from tests.stack import submit, wait_until_final

LATER = 10


def held_by_a_worker(store) -> set[uuid.UUID]:
    """The jobs the workers' leases say they hold: prefetched, gathered or running."""
    return {job_id for lease in store.leases() for job_id in lease["held"]}


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(0.2)


def test_jobs_arriving_while_every_pool_process_is_busy_gather_into_one_model_call(stack, store, gateway):
    """The pool processes are stopped (SIGSTOP), so the first two jobs, one handed to each, cannot
    end: the next ones arrive 20 ms apart, far more than the old fixed 2 ms window, and must wait
    together for a process, then run as one batch once the processes go on (SIGCONT)."""
    wait_for(lambda: not held_by_a_worker(store), "the worker did not finish earlier tests' work")
    pool = pool_processes(stack)
    assert len(pool) == 2, f"the stack's worker should have two pool processes, has {pool}"
    try:
        for pid in pool:
            os.kill(pid, signal.SIGSTOP)
        first = [submit(gateway, images.fresh_png_digit(d, 1), f"first{d}.png").json()["id"] for d in (1, 2)]
        later = []
        for i in range(LATER):
            later.append(submit(gateway, images.fresh_png_digit(i, 2), f"later{i}.png").json()["id"])
            time.sleep(0.02)
        every = {uuid.UUID(j) for j in first + later}
        wait_for(lambda: every <= held_by_a_worker(store), "the worker did not receive every job")
    finally:
        for pid in pool:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    rows = wait_until_final(store, first + later, timeout=60)
    assert [rows[j]["label"] for j in first] == ["1", "2"]
    assert [rows[j]["label"] for j in later] == [str(i) for i in range(LATER)]
    assert [rows[j]["batch_size"] for j in first] == [1, 1], "each of the first two found a process free"
    sizes = [rows[j]["batch_size"] for j in later]
    assert sizes == [LATER] * LATER, f"jobs gathered while the pool was busy ran in batches of {sizes}"
