"""A Cassandra of a benchmark's own: its state folder emptied, on ports apart from `make up`'s and
the tests', so a benchmark never touches either."""

from __future__ import annotations

import shutil

from devstack.stack import LocalStack
from shared.settings import PROJECT_ROOT, Settings


def own_cassandra(name: str, port: int, storage_port: int) -> tuple[Settings, LocalStack]:
    """Settings and a stopped LocalStack under .recog/<name>; start_cassandra() starts it."""
    state = PROJECT_ROOT / ".recog" / name
    settings = Settings.from_env(
        {}, cassandra_port=port, cassandra_storage_port=storage_port, cassandra_protocol_version=3
    )
    stack = LocalStack(settings, state, PROJECT_ROOT / ".recog" / "cache")
    stack.down()
    shutil.rmtree(state, ignore_errors=True)
    return settings, stack
