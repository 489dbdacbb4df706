"""The whole local stack as background processes: Redis, Cassandra, workers, gateway, Flower.

`make up` and the integration tests both use this; each instance has its own state folder and
ports, so a test session never touches a running `make up` stack.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis
import requests
from kombu.exceptions import OperationalError

from devstack import cassandra, processes
from shared.settings import Settings

BIN = Path(sys.executable).parent
# The local stack's workers: one takes single-image jobs, the other bulk chunks, niced, so a single
# job never waits behind a chunk, for a pool process or for CPU (docs/architecture.md#priority).
SINGLES_WORKER, BULK_WORKER = "worker1", "worker-bulk"
BULK_NICE = 10


class LocalStack:
    def __init__(self, settings: Settings, root: Path, cache: Path) -> None:
        self.settings = settings
        self.root = root
        self.cache = cache
        self.run_dir = root / "run"
        self.log_dir = root / "logs"

    @property
    def redis_port(self) -> int:
        return urlparse(self.settings.redis_url).port or 6379

    def env(self, settings: Settings | None = None) -> dict[str, str]:
        # PYTHONFAULTHANDLER: a process killed by a native crash leaves its traceback in its log.
        return {
            **os.environ,
            **(settings or self.settings).to_env(),
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",
        }

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _claim_port(self, name: str, port: int) -> bool:
        """True if ours already runs; raises if a process we did not start holds its port."""
        if processes.running_pid(self.run_dir, name):
            return True
        if not processes.port_is_free(port):
            raise RuntimeError(
                f"port {port} for {name} is taken by a process this stack did not start "
                f"(a system service?); stop it or choose another port in the RECOG_* settings"
            )
        return False

    def start_redis(self) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError(
                "redis-server is not installed; `make up` installs it (apt-get install redis-server)"
            )
        if self._claim_port("redis", self.redis_port):
            return
        data = self.root / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            "redis-server",
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        processes.start("redis", argv, self.run_dir, self.log_dir)
        processes.wait_for_port("127.0.0.1", self.redis_port, 30, "Redis", self.log("redis"))

    def start_cassandra(self, timeout: float = 180, commitlog_sync: str = "batch") -> None:
        if self._claim_port("cassandra", self.settings.cassandra_port):
            return
        home = cassandra.ensure_unpacked(self.cache / "cassandra")
        config = cassandra.write_config(
            home,
            self.root / "cassandra",
            self.settings.cassandra_port,
            self.settings.cassandra_storage_port,
            commitlog_sync,
        )
        processes.start(
            "cassandra", cassandra.command(home, config, self.log_dir), self.run_dir, self.log_dir
        )
        processes.wait_for_port(
            "127.0.0.1", self.settings.cassandra_port, timeout, "Cassandra", self.log("cassandra")
        )

    def create_schema(self, timeout: float = 60) -> None:
        from shared.store.schema import create_schema
        from shared.store.session import connect

        deadline = time.monotonic() + timeout
        while True:
            try:
                cluster, session = connect(self.settings)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        try:
            create_schema(session, self.settings)
        finally:
            cluster.shutdown()

    def start_worker(
        self,
        name: str = SINGLES_WORKER,
        settings: Settings | None = None,
        app: str = "workers.main",
        queues: str | None = None,
    ) -> None:
        """settings: this worker's own (another image folder, say), else the stack's. app: the
        Celery app's module (a test's may wrap the real one). queues: "singles", "bulk" or "both";
        by default a worker named worker-bulk... takes the bulk queue, niced, and serves its metrics
        on the port after the singles worker's, and any other takes the single-image queue."""
        settings = settings or self.settings
        role = queues or ("bulk" if name.startswith(BULK_WORKER) else "singles")
        if role not in ("singles", "bulk", "both"):
            raise ValueError(f"queues: singles, bulk or both, not {role!r}")
        if role == "bulk":
            port = settings.worker_metrics_port
            settings = settings.replace(worker_nice=BULK_NICE, worker_metrics_port=port + 1 if port else 0)
        taken = {
            "singles": settings.queue,
            "bulk": settings.bulk_queue,
            "both": f"{settings.queue},{settings.bulk_queue}",
        }
        argv = [
            str(BIN / "celery"),
            "-A",
            app,
            "worker",
            "-Q",
            taken[role],
            "-n",
            f"{name}@%h",
            "-E",
            "--loglevel=INFO",
            "-c",
            str(self.settings.worker_concurrency),
        ]
        env = {**self.env(settings), "PROMETHEUS_MULTIPROC_DIR": str(self.root / "metrics" / name)}
        processes.start(name, argv, self.run_dir, self.log_dir, env=env)

    def start_workers(self) -> None:
        """The single-image worker and the bulk worker: single jobs never wait behind chunks."""
        self.start_worker(SINGLES_WORKER)
        self.start_worker(BULK_WORKER)

    def stop_workers(self) -> None:
        self.stop(BULK_WORKER)
        self.stop(SINGLES_WORKER)

    def wait_workers_ready(self, timeout: float = 120) -> None:
        self.wait_worker_ready(SINGLES_WORKER, timeout)
        self.wait_worker_ready(BULK_WORKER, timeout)

    def stop(self, name: str) -> None:
        """Stop one service the way `make down` does: SIGTERM, then wait for it."""
        processes.stop(self.run_dir, name, timeout=20)

    def kill(self, name: str) -> None:
        """SIGKILL a service's whole process group, as a crash or an OOM kill would."""
        processes.kill(self.run_dir, name)

    def start_gateway(self) -> None:
        """Its processes and threads are settings, read by gateway/gunicorn_conf.py."""
        url = urlparse(self.settings.gateway_url)
        if self._claim_port("gateway", url.port):
            return
        argv = [
            str(BIN / "gunicorn"),
            "-k",
            "gthread",
            "-b",
            f"{url.hostname}:{url.port}",
            "--access-logfile",
            "-",
            "--timeout",
            "60",
            "-c",
            "python:gateway.gunicorn_conf",
            "gateway.wsgi:app",
        ]
        env = {**self.env(), "PROMETHEUS_MULTIPROC_DIR": str(self.root / "metrics" / "gateway")}
        processes.start("gateway", argv, self.run_dir, self.log_dir, env=env)

    def local_key(self) -> str:
        """The key kept in the state folder, made (all scopes, tenant 'local') when it is missing
        or no longer works: the one the CLI and the person at this machine use."""
        from shared import keys
        from shared.jobs import utcnow
        from shared.store.cassandra_results import CassandraStore

        path = self.root / keys.LOCAL_KEY_FILE
        saved = path.read_text().strip() if path.is_file() else ""
        store = CassandraStore.open(self.settings)
        try:
            parts = keys.split(saved)
            found = store.keys.get(parts[0]) if parts else None
            if found is not None and found.opens_with(parts[1]):
                return saved
            keys.revoke(store.keys, keys.LOCAL_KEY, utcnow())
            key = keys.create(store.keys, keys.LOCAL_KEY, keys.LOCAL_KEY, keys.SCOPES, utcnow())
        finally:
            store.close()
        save_key(self.root, key)
        return key

    def flower_password(self) -> str:
        if self.settings.flower_password:
            return self.settings.flower_password
        path = self.root / "flower-password"
        if not path.exists():
            processes.write_private(path, secrets.token_urlsafe(12))
        return path.read_text().strip()

    def start_flower(self) -> None:
        url = urlparse(self.settings.flower_url)
        if self._claim_port("flower", url.port):
            return
        argv = [
            str(BIN / "celery"),
            "-A",
            "workers.main",
            "flower",
            f"--address={url.hostname}",
            f"--port={url.port}",
        ]
        # Flower reads FLOWER_* variables: the password stays off the command line (ps shows it).
        env = {**self.env(), "FLOWER_BASIC_AUTH": f"{self.settings.flower_user}:{self.flower_password()}"}
        processes.start("flower", argv, self.run_dir, self.log_dir, env=env)

    def wait_gateway_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                response = requests.get(f"{self.settings.gateway_url}/readyz", timeout=5)
                if response.status_code == 200:
                    return
                last = response.text
            except requests.RequestException as exc:
                last = str(exc)
            if processes.running_pid(self.run_dir, "gateway") is None:
                raise RuntimeError(f"the gateway exited; see {self.log('gateway')}")
            time.sleep(0.5)
        raise TimeoutError(f"gateway not ready after {timeout:.0f} s: {last}; see {self.log('gateway')}")

    def wait_worker_ready(self, name: str = SINGLES_WORKER, timeout: float = 120) -> None:
        """Until the worker answers a ping: its model is loaded once it does."""
        from celery import Celery

        from shared.messaging import celery_config

        app = Celery("recog-probe")
        app.config_from_object(celery_config(self.settings))
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    replies = app.control.ping(timeout=1.0)
                except (redis.RedisError, OSError, OperationalError):
                    # A connection from before a Redis restart on the same port: ask again.
                    replies = []
                if any(next(iter(r)).startswith(f"{name}@") for r in replies):
                    return
                if processes.running_pid(self.run_dir, name) is None:
                    break
                time.sleep(0.5)
        finally:
            app.close()
        raise TimeoutError(f"worker {name} not ready after {timeout:.0f} s; see {self.log(name)}")

    def services(self) -> list[str]:
        return ["redis", "cassandra", *self._workers(), "gateway", "flower"]

    def _workers(self) -> list[str]:
        return sorted(p.stem for p in self.run_dir.glob("worker*.pid"))

    def down(self) -> list[str]:
        """Stop what this stack started, newest first; returns the names that were running."""
        stopped = []
        for name in reversed(self.services()):
            if processes.stop(self.run_dir, name, timeout=60 if name == "cassandra" else 20):
                stopped.append(name)
        return stopped


def save_key(folder: Path, key: str) -> None:
    """The local key, and its header for `curl -H @FILE` (shared/keys.py), both mode 600."""
    from shared import keys

    processes.write_private(folder / keys.LOCAL_KEY_FILE, key)
    processes.write_private(folder / keys.LOCAL_HEADER_FILE, f"Authorization: Bearer {key}")
