"""One Settings object, read from RECOG_* environment variables once and passed everywhere."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_state_dir() -> Path:
    """Where local state lives (uploads, the local stack's data and logs): RECOG_STATE_DIR if set,
    else beside the code in a checkout (.recog/), the user's state folder for an installed package,
    never site-packages."""
    if os.environ.get("RECOG_STATE_DIR"):
        return Path(os.environ["RECOG_STATE_DIR"]).expanduser().resolve()
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / ".recog"
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "recog"


STATE_DIR = default_state_dir()


class SettingsError(ValueError):
    """A RECOG_* variable has a value that cannot be used; the message names it."""


IMAGE_STORES = ("volume", "cassandra")
# Cassandra refuses a mutation over half its commit-log segment (32 MiB by default, in 2.1 and
# 5.0); an image row must stay under that with room for its other columns.
CASSANDRA_IMAGE_LIMIT = 15 * 1024 * 1024

# Passwords the examples show (.env.example): refused, so a copied example never goes live.
PLACEHOLDER_PASSWORDS = ("change-me",)

CONSISTENCY_NAMES = ("ONE", "TWO", "THREE", "QUORUM", "LOCAL_QUORUM", "LOCAL_ONE", "ALL")


# Who reads a setting: the gateway, the workers, the `recog` command (cli), `make up` / `recog up`
# (stack), Flower. The configuration reference (docs/configuration.md) is checked against these,
# and these against the code (tests/settings_readers.py).
GATEWAY, WORKERS, CLI, STACK, FLOWER = "gateway", "workers", "cli", "stack", "flower"
SERVICES = (GATEWAY, WORKERS, CLI, STACK)


def setting(
    default: Any,
    read_by: tuple[str, ...],
    low: float | None = None,
    high: float | None = None,
    choices: tuple = (),
    secret: bool = False,
):
    """A field with who reads it and, for a number, its bounds (inclusive) or its choices, checked
    at start. A secret is left out of the settings' repr, so a logged Settings shows none."""
    metadata = {"read_by": read_by, "low": low, "high": high, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata, repr=not secret)


@dataclass(frozen=True)
class Settings:
    # May hold Redis's password (redis://:PASSWORD@host:6379/0), as compose's does.
    redis_url: str = setting("redis://127.0.0.1:6379/0", (GATEWAY, WORKERS, STACK, FLOWER), secret=True)
    cassandra_hosts: tuple[str, ...] = setting(("127.0.0.1",), SERVICES)
    cassandra_port: int = setting(9042, SERVICES, 1, 65535)
    # The local Cassandra's own inter-node port (and +1 for its TLS twin); `recog up` only.
    cassandra_storage_port: int = setting(7000, (STACK,), 1, 65534)
    # 0 negotiates (Cassandra 5.0 in compose) and falls back to 3 for the local 2.1.
    cassandra_protocol_version: int = setting(0, SERVICES, choices=(0, 3, 4, 5))
    cassandra_keyspace: str = setting("recognition", SERVICES)
    # "SimpleStrategy:1" or "NetworkTopologyStrategy:dc1=3,dc2=3"
    cassandra_replication: str = setting("SimpleStrategy:1", (CLI, STACK))
    cassandra_consistency: str = setting("LOCAL_QUORUM", SERVICES, choices=CONSISTENCY_NAMES)
    # A login, for a Cassandra with PasswordAuthenticator (compose's); empty: none. `recog schema`
    # makes this user from Cassandra's default superuser the first time (shared/store/logins.py).
    cassandra_username: str = setting("", SERVICES)
    cassandra_password: str = setting("", SERVICES, secret=True)
    # TLS to Cassandra, checked against the CA certificates in cassandra_tls_ca (a PEM file; empty:
    # the system's), host names included.
    cassandra_tls: bool = setting(False, SERVICES)
    cassandra_tls_ca: str = setting("", SERVICES)
    image_dir: Path = setting(STATE_DIR / "images", (GATEWAY, WORKERS, CLI))
    # Where uploaded bytes live: "volume" (files under image_dir, a folder every process shares)
    # or "cassandra" (a table: workers on other hosts then need only Redis and Cassandra).
    image_store: str = setting("volume", (GATEWAY, WORKERS, CLI), choices=IMAGE_STORES)
    # The shipped models are package data: read-only, beside the code in a checkout or install.
    models_dir: Path = setting(PROJECT_ROOT / "model" / "models", (GATEWAY, WORKERS, CLI))
    model: str = setting("digits", (GATEWAY, WORKERS, CLI))
    queue: str = setting("recog", (GATEWAY, WORKERS, STACK))
    max_upload_bytes: int = setting(10 * 1024 * 1024, (GATEWAY,), 1, 2**31 - 1)
    # gunicorn processes of the gateway, and threads in each: a request waiting for its answer
    # (?wait=) holds a thread until it comes, so the threads bound how many jobs the workers can
    # gather into one batch. 2 x 8 held 32 waiting clients to 139-156 images/s, 2 x 32 gave 197.
    gateway_workers: int = setting(2, (GATEWAY,), 1, 64)
    gateway_threads: int = setting(32, (GATEWAY,), 1, 1024)
    # At most Pillow's own limit, which it enforces whatever this says.
    max_image_pixels: int = setting(16_000_000, (GATEWAY, WORKERS, CLI), 1, 89_478_485)
    # At least 10: the page waits up to 10 s for a drawing's answer.
    max_wait_seconds: float = setting(30.0, (GATEWAY,), 10, 300)
    # Redis redelivers an unacknowledged task after this long; must exceed queue wait + run time.
    visibility_timeout: int = setting(3600, (GATEWAY, WORKERS, STACK), 1, 7 * 24 * 3600)
    # How often workers look for work whose task message was lost, and how far back (open work
    # is kept that long).
    sweep_seconds: int = setting(15, (WORKERS,), 1, 3600)
    sweep_hours: int = setting(24, (GATEWAY, WORKERS, STACK), 1, 24 * 30)
    # A worker's claim on the work it holds lives this long unless renewed (every third of it):
    # how soon the work of a SIGKILLed worker is sent again.
    lease_seconds: int = setting(30, (WORKERS,), 6, 3600)
    tf_threads: int = setting(1, (WORKERS, CLI), 1, 256)
    # A task still running after this long is killed with its pool process (a decoder stuck on
    # a hostile file); its jobs then run again one image at a time (workers/alone.py).
    # A 64-image chunk of 16 MP images takes well under a minute on one core.
    task_time_limit: int = setting(300, (WORKERS,), 10, 24 * 3600)
    # A pool process whose peak resident memory passed this many MB is replaced, after its task, by a new
    # one (0: never). One holding the digits model in LiteRT measured 65 MB, 243 MB at its peak
    # while decoding 16 MP images; one that had to convert its model's weights with TensorFlow
    # about 620 MB, 860 at its peak.
    worker_max_memory_mb: int = setting(1536, (WORKERS,), 0, 1024 * 1024)
    # Two pool processes overlap one chunk's Cassandra waits with the other's recognition:
    # 2,000 images through `recog submit-folder` went from 105 to 183 images/s on the 2-core machine.
    worker_concurrency: int = setting(2, (WORKERS, STACK), 1, 256)
    # The CPU priority a worker runs at (its nice value): the bulk worker's is 10 (the local stack's
    # worker-bulk, compose's worker-bulk), so single-image jobs never wait for CPU behind chunks.
    worker_nice: int = setting(0, (WORKERS,), 0, 19)
    # Dynamic batching of single-image jobs: a model call of at most max_batch jobs, started as soon
    # as a pool process is free for it; jobs arriving while every process is busy gather until one
    # is free (workers/gathering.py). max_wait_ms above 0 also holds a job up to that long with a
    # process free, hoping for company: measured in bench/flush_settings.py.
    max_batch: int = setting(64, (WORKERS,), 1, 4096)
    max_wait_ms: int = setting(0, (WORKERS,), 0, 10_000)
    # Task messages a worker takes from Redis ahead, per pool process (Celery's prefetch
    # multiplier), both queues together; 0: room for a gathered batch, at most 16
    # (workers.default_prefetch). Measured in bench/prefetch.py.
    prefetch_multiplier: int = setting(0, (WORKERS,), 0, 4096)
    # Bulk submissions travel to workers as tasks of this many images, on their own queue.
    chunk_size: int = setting(64, (GATEWAY,), 1, 4096)
    bulk_queue: str = setting("recog.bulk", (GATEWAY, WORKERS, STACK))
    max_files_per_request: int = setting(1000, (GATEWAY,), 1, 100_000)
    # A batch's lines are one Cassandra partition of about 150 bytes a file: 100,000 is 15 MB.
    max_files_per_batch: int = setting(100_000, (GATEWAY,), 1, 1_000_000)
    # Backpressure (gateway/quotas.py), 0: none. Requests a key may send in any one second; images
    # a tenant may have queued or running at once (a bigger upload gets 429 until they finish);
    # single-image messages waiting for a worker before a single job gets 503.
    # The request rate stops a runaway client: the test suite's busiest second sent 416
    # requests with one key, and single-image throughput must not be capped by it.
    requests_per_second: int = setting(1000, (GATEWAY,), 0, 1_000_000)
    max_queued_images: int = setting(50_000, (GATEWAY,), 0, 100_000_000)
    max_queue_depth: int = setting(10_000, (GATEWAY,), 0, 100_000_000)
    # How long jobs, batches and cached results are kept, as Cassandra TTLs that `recog schema`
    # sets (a row goes this long after it was last written), and stored images (removed by the
    # collector this long after they were last uploaded); the audit rows keep their own. 0: for
    # ever. At most 7,300 days, Cassandra's longest TTL.
    retention_days: float = setting(30.0, (WORKERS, CLI, STACK), 0, 7300)
    audit_retention_days: float = setting(365.0, (CLI, STACK), 0, 7300)
    # How often a worker's sweeper runs the image collector (0: never; `recog collect-images`).
    collect_minutes: int = setting(60, (WORKERS,), 0, 7 * 24 * 60)
    # The most batches GET /v1/batches gives in one page (?limit=).
    max_batches_listed: int = setting(100, (GATEWAY,), 1, 1000)
    # How long an upload's Idempotency-Key is remembered: a retry within it gets the first answer.
    idempotency_hours: int = setting(24, (GATEWAY,), 1, 24 * 30)
    max_batch_upload_bytes: int = setting(512 * 1024 * 1024, (GATEWAY,), 1, 2**40)
    zip_max_entries: int = setting(10_000, (GATEWAY,), 1, 10_000_000)
    zip_max_bytes: int = setting(1024 * 1024 * 1024, (GATEWAY,), 1, 2**40)
    gateway_url: str = setting("http://127.0.0.1:8000", (CLI, STACK))
    # The CLI's API key; empty: the one `make up` saved in its state folder (.recog/api-key).
    api_key: str = setting("", (CLI,), secret=True)
    # How long a gateway process trusts a key it looked up: a revoked key works this much longer.
    key_cache_seconds: int = setting(10, (GATEWAY,), 0, 3600)
    # Each Celery worker serves its pool's Prometheus metrics here (0: not at all).
    worker_metrics_host: str = setting("127.0.0.1", (WORKERS, STACK))
    worker_metrics_port: int = setting(9100, (WORKERS, STACK), 0, 65535)
    # Webhooks (shared/callbacks.py): where a callback_url may point, as "public" (any globally
    # routable address) and networks (CIDR or single addresses). The local default adds this
    # machine's loopback; compose's allows "public" alone, so no loopback or private address.
    callback_allow: tuple[str, ...] = setting(("public", "127.0.0.1", "::1"), (GATEWAY, WORKERS))
    # A callback answered with anything but 2xx is tried again, with backoff, this long after
    # its first try; then it is given up.
    callback_retry_hours: float = setting(24.0, (WORKERS,), 0, 24 * 30)
    callback_connect_seconds: float = setting(1.0, (WORKERS,), 0.1, 60)
    callback_read_seconds: float = setting(5.0, (WORKERS,), 0.1, 300)
    # How far back workers look for callbacks still to deliver: a job or batch that takes longer
    # than this to end gets none.
    # At least 2: a failed callback is registered again at each try, for this long, and the
    # longest wait between tries is about an hour.
    callback_hours: int = setting(48, (GATEWAY, WORKERS), 2, 24 * 30)
    flower_url: str = setting("http://127.0.0.1:5555", (GATEWAY, STACK))
    flower_user: str = setting("recog", (STACK, FLOWER))
    # Empty: `recog up` makes a random one and keeps it in .recog/flower-password.
    flower_password: str = setting("", (STACK, FLOWER), secret=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from RECOG_* variables; explicit keyword overrides win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            var = "RECOG_" + f.name.upper()
            if f.name in overrides:
                values[f.name] = overrides.pop(f.name)
            elif env.get(var, "") != "":
                values[f.name] = _parse(var, env[var], f.default)
        if overrides:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(overrides))}")
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value, choices = getattr(self, f.name), f.metadata["choices"]
            if choices and value not in choices:
                listed = ", ".join(map(str, choices))
                raise SettingsError(f"RECOG_{f.name.upper()}={value!r}; use one of {listed}")
        replication_options(self.cassandra_replication)
        from shared.callbacks import check_allow

        try:
            check_allow(self.callback_allow)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        redis_password = urlparse(self.redis_url).password
        for var, value, dotenv in (
            ("RECOG_FLOWER_PASSWORD", self.flower_password, "FLOWER_PASSWORD"),
            ("RECOG_CASSANDRA_PASSWORD", self.cassandra_password, "CASSANDRA_PASSWORD"),
            ("RECOG_REDIS_URL's password", redis_password, "REDIS_PASSWORD"),
        ):
            if value in PLACEHOLDER_PASSWORDS:
                raise SettingsError(
                    f"{var} is {value!r}, the example's; set a password of your own ({dotenv} in .env)"
                )
        if bool(self.cassandra_username) != bool(self.cassandra_password):
            raise SettingsError("set both RECOG_CASSANDRA_USERNAME and RECOG_CASSANDRA_PASSWORD, or neither")
        if self.image_store == "cassandra" and self.max_upload_bytes > CASSANDRA_IMAGE_LIMIT:
            raise SettingsError(
                f"RECOG_MAX_UPLOAD_BYTES={self.max_upload_bytes} is above {CASSANDRA_IMAGE_LIMIT}, the "
                "largest image RECOG_IMAGE_STORE=cassandra keeps in one row; lower the limit or use "
                "RECOG_IMAGE_STORE=volume"
            )
        for f in dataclasses.fields(self):
            low, high = f.metadata["low"], f.metadata["high"]
            if low is not None and not low <= getattr(self, f.name) <= high:
                raise SettingsError(
                    f"RECOG_{f.name.upper()}={getattr(self, f.name)} is out of range; use {low:,} to {high:,}"
                )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The RECOG_* variables that rebuild these settings in a child process."""
        env = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            env["RECOG_" + f.name.upper()] = ",".join(value) if isinstance(value, tuple) else str(value)
        return env


def replication_options(spec: str) -> dict[str, str]:
    """Turn "SimpleStrategy:1" / "NetworkTopologyStrategy:dc1=3" into CQL replication options."""
    strategy, _, rest = spec.partition(":")
    if strategy == "SimpleStrategy" and rest.isdigit():
        return {"class": strategy, "replication_factor": rest}
    if strategy == "NetworkTopologyStrategy" and rest:
        options = {"class": strategy}
        for item in rest.split(","):
            dc, _, factor = item.partition("=")
            if not dc or not factor.isdigit():
                break
            options[dc.strip()] = factor
        else:
            return options
    raise SettingsError(
        f"RECOG_CASSANDRA_REPLICATION={spec!r}; use 'SimpleStrategy:1' or 'NetworkTopologyStrategy:dc1=3'"
    )


def _parse(var: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(default, Path):
            return Path(raw).expanduser().resolve()
    except ValueError as exc:
        raise SettingsError(f"{var}={raw!r} is not a valid {type(default).__name__}") from exc
    return raw
