"""The entrypoint of recog's Cassandra 2.1 image, run like the official image: `docker-entrypoint.sh
cassandra -f`, commitlog_sync read from /etc/cassandra/cassandra.yaml (the line compose rewrites
to batch), data in /var/lib/cassandra, heap from MAX_HEAP_SIZE. It writes the node's real
configuration (devstack/cassandra.py, the local stack's) and becomes the JVM."""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

from devstack.cassandra import command, write_config

HOME = Path("/opt/cassandra/package/apache-cassandra-2.1.0")
SETTINGS = Path("/etc/cassandra/cassandra.yaml")
DATA = Path("/var/lib/cassandra")


def main(argv: list[str]) -> None:
    if argv[:1] != ["cassandra"]:
        os.execvp(argv[0], argv)  # any other command, as the official image allows
    settings = SETTINGS.read_text()
    found = re.search(r"^commitlog_sync:\s*(\w+)\s*$", settings, re.MULTILINE)
    sync = found.group(1) if found else "periodic"
    # The line compose rewrites to PasswordAuthenticator, as it does in the official image.
    found = re.search(r"^authenticator:\s*(\w+)\s*$", settings, re.MULTILINE)
    authenticator = found.group(1) if found else "AllowAllAuthenticator"
    address = socket.gethostbyname(socket.gethostname())
    # Written anew at each start, beside the data in the volume: the container's address may change.
    config = write_config(
        HOME,
        DATA,
        9042,
        7000,
        sync,
        address=address,
        clients_from="0.0.0.0",
        extra={"authenticator": authenticator},
    )
    heap = os.environ.get("MAX_HEAP_SIZE", "1G").lower()
    logs = DATA / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    argv = command(HOME, config, logs, heap=heap)
    print(
        f"recog-cassandra: Cassandra 2.1 on {address}, commitlog_sync {sync}, {authenticator}, heap {heap}",
        flush=True,
    )
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
