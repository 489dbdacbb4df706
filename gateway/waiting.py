"""Hold a request until its job is final without hammering Cassandra.

The worker publishes on the job's Redis channel when it finishes; the waiter reads the row once
per announcement, and every few seconds in case an announcement was lost.
"""

from __future__ import annotations

import time
import uuid

import redis

from shared.jobs import FINAL_STATES
from shared.messaging import job_channel

FALLBACK_POLL_SECONDS = 2.0


def wait_for_final(services, job_id: uuid.UUID, timeout: float) -> dict | None:
    """The job row once final, or as it stands when timeout runs out (None if unknown)."""
    deadline = time.monotonic() + timeout
    pubsub = _subscribe(services.redis, job_id)
    try:
        row = services.store.get_job(job_id)
        while row is not None and row["status"] not in FINAL_STATES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            pubsub = _wait_for_announcement(pubsub, min(left, FALLBACK_POLL_SECONDS))
            row = services.store.get_job(job_id)
        return row
    finally:
        if pubsub is not None:
            pubsub.close()


def _subscribe(client: redis.Redis, job_id: uuid.UUID):
    try:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(job_channel(str(job_id)))
        return pubsub
    except redis.RedisError:
        return None


def _wait_for_announcement(pubsub, seconds: float):
    """Block until a message or seconds pass; without Redis, just sleep a little."""
    if pubsub is not None:
        try:
            pubsub.get_message(timeout=seconds)
            return pubsub
        except redis.RedisError:
            pubsub.close()
    time.sleep(min(seconds, 0.5))
    return None
