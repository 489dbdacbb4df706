"""Start and stop background services by pid file: `make down` stops exactly what we started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def _pidfile(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.pid"


def running_pid(run_dir: Path, name: str) -> int | None:
    """The pid recorded for name, if that process is still the one we started."""
    path = _pidfile(run_dir, name)
    try:
        pid_text, _, started = path.read_text().partition("\n")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    # A recycled pid belongs to a process started later than ours; compare start times.
    if _start_time(pid) != started.strip():
        return None
    return pid


def start(
    name: str,
    argv: Sequence[str],
    run_dir: Path,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start argv in its own session (it outlives this command) unless it already runs."""
    pid = running_pid(run_dir, name)
    if pid:
        return pid
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    _pidfile(run_dir, name).write_text(f"{proc.pid}\n{_start_time(proc.pid)}\n")
    return proc.pid


def stop(run_dir: Path, name: str, timeout: float = 30.0) -> bool:
    """SIGTERM the process group we started, SIGKILL it after timeout; True if it was running."""
    pid = running_pid(run_dir, name)
    _pidfile(run_dir, name).unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.2)
    if _group_alive(pid):
        _signal_group(pid, signal.SIGKILL)
    return True


def wait_for_port(host: str, port: int, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.3)
    hint = f"; see {log}" if log else ""
    raise TimeoutError(f"{what} did not open {host}:{port} within {timeout:.0f} s{hint}")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0


def _start_time(pid: int) -> str:
    try:
        # Field 22 of /proc/<pid>/stat: start time in clock ticks since boot.
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies of our own children still answer kill(0); reap what we can.
    try:
        while os.waitpid(-pgid, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    return any(_in_group(p, pgid) for p in Path("/proc").iterdir() if p.name.isdigit())


def _in_group(proc: Path, pgid: int) -> bool:
    try:
        fields = proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    # A SIGKILLed JVM's main thread turns zombie while its other threads are still exiting, and
    # those still hold its files: Cassandra's port answered after kill() had returned. Field 20 of
    # stat (17 here, after pid and name) counts the threads left.
    return int(fields[2]) == pgid and (fields[0] != "Z" or int(fields[17]) > 1)


def kill(run_dir: Path, name: str) -> None:
    """SIGKILL the group at once and forget it (a crash, not a shutdown)."""
    pid = running_pid(run_dir, name)
    _pidfile(run_dir, name).unlink(missing_ok=True)
    if pid is not None:
        _signal_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(0.1)


def write_private(path: Path, text: str) -> None:
    """A secret's file, made anew with mode 600: never readable by others, not even between the
    write and a chmod."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "w") as fh:
        fh.write(text + "\n")
