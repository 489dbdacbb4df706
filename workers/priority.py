"""Single-image jobs first (docs/architecture.md#priority): the bulk worker runs niced, so they
never wait for CPU behind bulk chunks, and its chunks pace their Cassandra work while single jobs
are on their way through it, so they never wait there either.

Linux groups the processes of each session for scheduling (autogroup), and a process's nice
value then weighs only against its own session's. A worker that leads its session (the local
stack starts each service in its own, as a container's first process does) nices its whole group
as well, so the cut counts against the gateway, Cassandra and the other worker too.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

AUTOGROUP = Path("/proc/self/autogroup")
# Set by a pool process that takes up single jobs, for as long as they take through Cassandra:
# Cassandra serves every request alike, and a chunk's burst of writes (eight logged batches of
# eight jobs, from each bulk process) put 40-90 ms ahead of a single job's one write.
SINGLES_BUSY = "recog:singles-busy"
BUSY_MS = 100
# While it is set, a chunk waits up to this long before each of its Cassandra steps, then sends
# one write at a time: bulk work slows (to a chunk in several seconds beside one client sending single
# jobs back to back, on the 2-core machine) but never stops, and a single job's write finds at
# most one of its writes ahead. Single jobs' p99 beside a batch, against idle (bench/priority.py,
# tests/integration/test_priority.py): 1.07-1.22x in three runs at 1 s; 1.05-2.13x at 0.25 s,
# where bulk kept about 40 images/s and each of its steps, every quarter second, could meet one.
YIELD_SECONDS = 1.0
POLL_SECONDS = 0.005


def lower_priority(nice: int) -> None:
    """Before the pool forks: its processes inherit it. Raising a nice value needs no privilege."""
    if nice <= 0:
        return
    os.setpriority(os.PRIO_PROCESS, 0, max(nice, os.getpriority(os.PRIO_PROCESS, 0)))
    if os.getsid(0) == os.getpid() and AUTOGROUP.exists():
        try:
            AUTOGROUP.write_text(str(nice))
        except OSError as exc:  # a kernel without autogroup, or a /proc mounted read-only
            log.info("could not nice this worker's session (%s); its processes are niced", exc)
    log.info("running at nice %d: single-image jobs come first", nice)


def singles_busy(client: redis.Redis) -> None:
    """A gathered batch of single jobs is on its way through Cassandra. Best effort: the jobs
    run all the same if Redis does not answer."""
    global _quiet_until
    if time.monotonic() < _quiet_until:
        return
    try:
        client.set(SINGLES_BUSY, b"1", px=BUSY_MS)
    except redis.RedisError:
        _quiet_until = time.monotonic() + QUIET_AFTER_ERROR_SECONDS


# After Redis failed to answer, workers stop asking it for this long: a Redis that hangs would
# otherwise cost every step of every chunk its socket timeout.
QUIET_AFTER_ERROR_SECONDS = 30.0
_quiet_until = 0.0


def yield_to_singles(client: redis.Redis) -> bool:
    """Wait while single jobs are busy, YIELD_SECONDS at most; whether they were."""
    global _quiet_until
    if time.monotonic() < _quiet_until:
        return False
    deadline = time.monotonic() + YIELD_SECONDS
    busy = False
    try:
        while client.exists(SINGLES_BUSY):
            busy = True
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
    except redis.RedisError:
        _quiet_until = time.monotonic() + QUIET_AFTER_ERROR_SECONDS
        return False
    return busy
