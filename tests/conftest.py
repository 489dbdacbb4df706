"""Fixtures shared by every test layer: settings, temporary folders, sample images."""

from __future__ import annotations

import socket

import pytest

from shared.settings import Settings


def unused_port() -> int:
    """A port nothing listens on: a real 'service is down' for the code under test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def offline_settings(tmp_path) -> Settings:
    """Settings whose Redis and Cassandra are unreachable, with a private image folder."""
    return Settings.from_env(
        {},
        redis_url=f"redis://127.0.0.1:{unused_port()}/0",
        cassandra_port=unused_port(),
        image_dir=tmp_path / "images",
    )


# The private real stack, for tests/integration and tests/browser; started only when a test asks.
from tests.stack import gateway, settings, spec, stack, stack_lock, stack_made_whole, store  # noqa: E402, F401
