"""A Docker engine for `make compose-up`: the one already running, or one of the project's own.

Where DOCKER_HOST is set or the system's socket answers, that engine is used and never stopped.
Otherwise Debian's dockerd (scripts/install-system.sh docker installs it) is started with its
data, exec root, socket and pid file under the state folder. It makes no docker0 bridge and
writes no iptables rules, so an engine the machine already has (or gets later) is never touched:
compose makes its own network, published ports go through docker's userland proxy, and image
builds use the host's network (`docker build --network host`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from devstack import processes

SYSTEM_SOCKET = Path("/var/run/docker.sock")


class Engine:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.run_dir = state / "run"
        self.log_dir = state / "logs"
        self.socket = state / "docker.sock"

    @property
    def ours(self) -> bool:
        """True while the engine this folder started runs: then it is the one in use, whatever
        else appears on the machine meanwhile."""
        return processes.running_pid(self.run_dir, "dockerd") is not None

    def existing(self) -> str | None:
        """DOCKER_HOST, or the system's socket if an engine answers on it."""
        if os.environ.get("DOCKER_HOST"):
            return os.environ["DOCKER_HOST"]
        if SYSTEM_SOCKET.exists() and _answers(f"unix://{SYSTEM_SOCKET}"):
            return f"unix://{SYSTEM_SOCKET}"
        return None

    @property
    def host(self) -> str:
        own = f"unix://{self.socket}"
        return own if self.ours else (self.existing() or own)

    def start(self, timeout: float = 60) -> str:
        """The engine's address, starting ours if no other runs."""
        if self.ours and _answers(self.host):
            return self.host
        if not self.ours and self.existing():
            return self.host
        if shutil.which("dockerd") is None:
            raise RuntimeError(
                "dockerd is missing: `make compose-up` installs it (scripts/install-system.sh docker)"
            )
        argv = [
            "dockerd",
            "--data-root", str(self.state / "data"),
            "--exec-root", str(self.state / "exec"),
            "--host", f"unix://{self.socket}",
            "--pidfile", str(self.state / "dockerd.pid"),
            "--bridge", "none",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
        ]  # fmt: skip
        processes.start("dockerd", argv, self.run_dir, self.log_dir)
        deadline = time.monotonic() + timeout
        while not _answers(self.host):
            if time.monotonic() > deadline or not self.ours:
                log = self.log_dir / "dockerd.log"
                raise RuntimeError(f"dockerd did not answer on {self.socket}; see {log}")
            time.sleep(0.5)
        return self.host

    def stop(self) -> bool:
        """Stop our engine (never another); True if it was running. A dockerd stopped leaves
        mounts under its exec root (network namespaces) that would keep the state folder from
        being removed: they are unmounted too."""
        stopped = processes.stop(self.run_dir, "dockerd", timeout=60)
        root = str(self.state.resolve())
        mounted = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounted if m.startswith(root + "/")), reverse=True):
            subprocess.run(["umount", point], capture_output=True, check=False)
        return stopped


def docker(*args: str, host: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], env={**os.environ, "DOCKER_HOST": host}, **options)


def _answers(host: str) -> bool:
    try:
        result = docker("version", "-f", "{{.Server.Version}}", host=host, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0
