"""Dynamic batching on the real worker: a job starts at once while a pool process is free for it,
and jobs that arrive while every process is busy gather into one model call."""

import os
import signal
import time

from tests import images
from tests.integration.test_failures import pool_processes
from tests.stack import submit, wait_until_final

LATER = 10


def test_jobs_arriving_while_every_pool_process_is_busy_gather_into_one_model_call(stack, store, gateway):
    """The pool processes are stopped (SIGSTOP), so the first two jobs, one handed to each, cannot
    end: the next ones arrive 20 ms apart, far more than the old fixed 2 ms window, and must wait
    together for a process, then run as one batch. The first two ran alone: each found a process
    free and was not held for company."""
    pool = pool_processes(stack)
    assert len(pool) == 2, f"the stack's worker should have two pool processes, has {pool}"
    for pid in pool:
        os.kill(pid, signal.SIGSTOP)
    try:
        first = [submit(gateway, images.fresh_png_digit(d, 1), f"first{d}.png").json()["id"] for d in (1, 2)]
        time.sleep(0.5)
        later = []
        for i in range(LATER):
            later.append(submit(gateway, images.fresh_png_digit(i, 2), f"later{i}.png").json()["id"])
            time.sleep(0.02)
        time.sleep(0.5)
    finally:
        for pid in pool:
            os.kill(pid, signal.SIGCONT)
    rows = wait_until_final(store, first + later, timeout=60)
    assert [rows[j]["label"] for j in first] == ["1", "2"]
    assert [rows[j]["label"] for j in later] == [str(i) for i in range(LATER)]
    first_sizes = [rows[j]["batch_size"] for j in first]
    assert first_sizes == [1, 1], "a job that found a process free waited for company"
    sizes = [rows[j]["batch_size"] for j in later]
    assert sizes == [LATER] * LATER, f"jobs gathered while the pool was busy ran in batches of {sizes}"
    assert len({rows[j]["started_at"] for j in later}) == 1
