"""CPU seconds spent by each process of a local stack, read from /proc: where an image's cost goes.

psutil would do this too, but it is not a dependency of recog and /proc's stat line is all that is
needed. Each stack process is started as the leader of its own process group (devstack/processes),
so a part's CPU is every live process of that group plus what its leader has reaped.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from pathlib import Path

from devstack import processes

TICK = os.sysconf("SC_CLK_TCK")
PARTS = ("gateway", "worker", "cassandra", "redis", "flower", "seed")


def _stat(proc: Path) -> list[str] | None:
    try:
        return proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


# A stat line's fields after pid and name: state (0), ppid (1), pgrp (2), ...; utime (11), stime
# (12), and the reaped children's cutime (13), cstime (14).
PPID, PGRP = 1, 2


def _matching(field: int, value: int) -> Iterator[tuple[Path, list[str]]]:
    """Each live process whose stat field holds value: its /proc folder and its stat fields."""
    for proc in Path("/proc").iterdir():
        fields = _stat(proc) if proc.name.isdigit() else None
        if fields is not None and int(fields[field]) == value:
            yield proc, fields


def _members(pgid: int) -> Iterator[tuple[Path, list[str]]]:
    """Each live process of the group."""
    return _matching(PGRP, pgid)


def children_seconds(apart: int | None = None) -> float:
    """utime + stime of this process's live children, each with the children it has reaped (a fork
    server's pool), the child whose pid is apart left out."""
    ticks = 0
    for proc, fields in _matching(PPID, os.getpid()):
        if int(proc.name) != apart:
            ticks += sum(int(f) for f in fields[11:15])
    return ticks / TICK


def group_seconds(pgid: int) -> float:
    """utime + stime of the group's live processes, plus the leader's reaped children."""
    ticks = 0
    for proc, fields in _members(pgid):
        ticks += int(fields[11]) + int(fields[12])
        if int(proc.name) == pgid:
            ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def _running(run_dir: Path) -> Iterator[tuple[str, int]]:
    """Each stack process that runs, by name (gateway, worker1, ...), with its group's id."""
    for pidfile in sorted(run_dir.glob("*.pid")):
        pid = processes.running_pid(run_dir, pidfile.stem)
        if pid is not None:
            yield pidfile.stem, pid


def snapshot(run_dir: Path) -> dict[str, float]:
    """CPU seconds so far of each stack part that runs (worker1, worker2, ... summed as 'worker'),
    and of this benchmark's own process and its children (the 'client')."""
    seconds: dict[str, float] = {}
    for name, pid in _running(run_dir):
        part = next((p for p in PARTS if name.startswith(p)), name)
        seconds[part] = seconds.get(part, 0.0) + group_seconds(pid)
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds["client"] = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
    return seconds


def rss_mb(run_dir: Path) -> dict[str, list[float]]:
    """The resident memory (MB) of each process of each stack part that runs, group leader first."""
    found: dict[str, list[float]] = {}
    for name, pid in _running(run_dir):
        members = sorted((int(proc.name) != pid, int(proc.name), _rss_kb(proc)) for proc, _ in _members(pid))
        found[name] = [round(kb / 1024, 1) for _, _, kb in members]
    return found


def _rss_kb(proc: Path) -> int:
    try:
        for line in proc.joinpath("status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cost_per_image(before: dict[str, float], after: dict[str, float], images: int) -> dict[str, float]:
    """CPU milliseconds per image of each part between two snapshots, and their total."""
    cost = {
        part: round(1000 * (after[part] - before.get(part, 0.0)) / max(images, 1), 3)
        for part in after
        if after[part] - before.get(part, 0.0) > 0
    }
    cost["total"] = round(sum(v for k, v in cost.items() if k != "client"), 3)
    return cost
