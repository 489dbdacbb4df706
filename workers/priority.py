"""A worker's CPU priority: the bulk worker runs niced, so single-image jobs never wait for CPU
behind bulk chunks (docs/architecture.md#priority).

Linux groups the processes of each session for scheduling (autogroup), and a process's nice
value then weighs only against its own session's. A worker that leads its session (the local
stack starts each service in its own, as a container's first process does) nices its whole group
as well, so the cut counts against the gateway, Cassandra and the other worker too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

AUTOGROUP = Path("/proc/self/autogroup")


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
