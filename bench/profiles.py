"""py-spy profiles of a local stack's Python processes during a benchmark phase: which functions the
CPU of bench/process_cpu.py's table goes to.

    with Profiles(stack.run_dir, out_dir, "bulk"):
        ...  # the phase
    top_functions(out_dir / "bulk-worker1.txt")
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from devstack import processes

PY_SPY = Path(sys.executable).parent / "py-spy"
PROFILED = ("gateway", "worker1", "worker-bulk")  # the Python parts; Cassandra is a JVM, Redis C


class Profiles:
    """py-spy recording each profiled part and its child processes (gunicorn's workers, the
    Celery pool) from enter to exit, sampling without pausing them (--nonblocking), and only
    threads holding the GIL (--gil): Python-level work, neither waits on sockets and disks nor
    native code that lets the GIL go (TensorFlow's call, OpenCV, big hashes), for which see
    bench/process_cpu.py's table."""

    def __init__(self, run_dir: Path, out_dir: Path, phase: str, rate: int = 100) -> None:
        self.run_dir, self.out_dir, self.phase, self.rate = run_dir, out_dir, phase, rate
        self._recorders: list[subprocess.Popen] = []

    def __enter__(self) -> Profiles:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name in PROFILED:
            pid = processes.running_pid(self.run_dir, name)
            if pid is None:
                continue
            argv = [str(PY_SPY), "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--gil"]
            argv += ["--rate", str(self.rate), "--format", "raw", "-o", str(self.path(name))]
            self._recorders.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        return self

    def __exit__(self, *exc) -> None:
        for recorder in self._recorders:
            recorder.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for recorder in self._recorders:
            recorder.wait(timeout=60)

    def path(self, name: str) -> Path:
        return self.out_dir / f"{self.phase}-{name}.txt"


def top_functions(raw: Path, n: int = 12) -> list[tuple[str, float]]:
    """The n functions the most samples were in (their own code, not their callees'), with
    each one's share of the samples."""
    if not raw.is_file():
        return []
    own: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        own[_without_line(leaf)] += int(count)
    total = sum(own.values()) or 1
    return [(name, round(samples / total, 4)) for name, samples in own.most_common(n)]


def _without_line(frame: str) -> str:
    """'finish (shared/store/cassandra_results.py:301)' -> 'finish (cassandra_results.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({path.rsplit('/', 1)[-1]})" if path else name
