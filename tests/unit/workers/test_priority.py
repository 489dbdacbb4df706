"""The bulk worker's yielding to single jobs (workers/priority.py), on a Redis of the tests'."""

import os
import time

import redis

from tests.fakes import FakeRedis
from workers import priority


def test_a_chunk_waits_a_little_while_single_jobs_are_busy_and_not_at_all_otherwise(monkeypatch):
    monkeypatch.setattr(priority, "_quiet_until", 0.0)
    client = FakeRedis()
    started = time.monotonic()
    assert priority.yield_to_singles(client) is False
    assert time.monotonic() - started < 0.05
    priority.singles_busy(client)
    started = time.monotonic()
    assert priority.yield_to_singles(client) is True
    waited = time.monotonic() - started
    assert (
        min(priority.BUSY_MS / 1000, priority.YIELD_SECONDS) - 0.01 <= waited < priority.YIELD_SECONDS + 0.1
    )
    client.expiring[priority.SINGLES_BUSY] = time.monotonic() + 10  # busy all along
    started = time.monotonic()
    assert priority.yield_to_singles(client) is True
    assert priority.YIELD_SECONDS <= time.monotonic() - started < priority.YIELD_SECONDS + 0.1, "never stops"


def test_single_jobs_done_lets_a_waiting_chunk_go_at_once(monkeypatch):
    monkeypatch.setattr(priority, "_quiet_until", 0.0)
    client = FakeRedis()
    client.set(priority.SINGLES_BUSY, b"1", px=30)
    started = time.monotonic()
    assert priority.yield_to_singles(client) is True
    assert time.monotonic() - started < priority.YIELD_SECONDS


class DeadRedis:
    calls = 0

    def exists(self, key):
        self.calls += 1
        raise redis.ConnectionError("down")

    def set(self, *args, **kwargs):
        raise redis.ConnectionError("down")


def test_a_redis_that_fails_is_not_asked_again_for_a_while(monkeypatch):
    monkeypatch.setattr(priority, "_quiet_until", 0.0)
    dead = DeadRedis()
    assert priority.yield_to_singles(dead) is False and priority.yield_to_singles(dead) is False
    assert dead.calls == 1
    priority.singles_busy(dead)  # raises nothing, and asks nothing while quiet: the jobs run all the same


def test_a_nice_value_is_taken_by_the_process_and_never_lowered(monkeypatch, tmp_path):
    monkeypatch.setattr(priority, "AUTOGROUP", tmp_path / "autogroup")  # never this session's own
    set_to = []
    monkeypatch.setattr(os, "setpriority", lambda which, who, value: set_to.append(value))
    monkeypatch.setattr(os, "getpriority", lambda which, who: 15)
    priority.lower_priority(0)
    priority.lower_priority(10)
    assert set_to == [15]  # 10 would raise its priority back from 15: kept at 15
