"""Backpressure, decided in Redis before work is taken in: each key's request rate, each tenant's
images still queued, and how deep the single-image queue is.

Redis down: every check Redis answers lets the request through (and logs it). An upload is
accepted while Redis is down anyway (gateway/intake.py), so refusing it here would turn a queue
outage into a refusal. (An upload of more images than a tenant may have queued at all is refused
without asking Redis.)
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Sequence

import redis
from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from gateway.errors import RETRY_AFTER_SECONDS, ApiError
from shared.messaging import queued_set

log = logging.getLogger(__name__)


class Quotas:
    def __init__(self, settings, client: redis.Redis) -> None:
        self.settings, self.redis = settings, client
        self.rate = (
            RateLimitItemPerSecond(settings.requests_per_second) if settings.requests_per_second else None
        )
        self._limiter: MovingWindowRateLimiter | None = None

    @property
    def limiter(self) -> MovingWindowRateLimiter:
        """Made on first use, after gunicorn forked: its Redis connections are this process's."""
        if self._limiter is None:
            storage = storage_from_string(
                self.settings.redis_url, wrap_exceptions=True, socket_timeout=3, socket_connect_timeout=3
            )
            self._limiter = MovingWindowRateLimiter(storage)
        return self._limiter

    def check_rate(self, key_id: str) -> None:
        """A moving window of one second: RECOG_REQUESTS_PER_SECOND requests a key, whatever they are."""
        if self.rate is None:
            return
        try:
            if self.limiter.hit(self.rate, key_id):
                return
            reset = self.limiter.get_window_stats(self.rate, key_id).reset_time
        except StorageError as exc:
            log.warning("rate limit not checked, Redis is not answering: %s", exc)
            return
        wait = max(1, math.ceil(reset - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"this key sent more than {self.settings.requests_per_second} requests in the last second "
            f"(RECOG_REQUESTS_PER_SECOND); retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )

    def admit(self, tenant: str | None, job_ids: Sequence[uuid.UUID], single: bool) -> None:
        """Let an upload's new jobs in, or refuse them, in one round trip to Redis: for a single
        job, how many single-image messages wait (RECOG_MAX_QUEUE_DEPTH: beyond it a 503 now
        beats a wait of minutes); for a tenant, its images not yet finished plus this upload's
        (RECOG_MAX_QUEUED_IMAGES). Let in, the jobs are counted as queued in the same round trip,
        before they are sent (their workers take them off as they end, which can come before a
        count made after the send); refused, or not accepted after all (not_queued), taken off.
        Two uploads at once can both pass, and one refused counts for the moment until it is taken
        off: the caps are brakes, not ledgers. Redis down: the upload is accepted and queued later
        (gateway/intake.py), uncounted."""
        files = len(job_ids)
        most = self.settings.max_queue_depth if single else 0
        cap = self.settings.max_queued_images if tenant is not None and files else 0
        if cap and files > cap:
            raise ApiError(
                413,
                "too_many_files",
                f"this upload has {files:,} images; at most {cap:,} may wait at once for one tenant "
                "(RECOG_MAX_QUEUED_IMAGES). Send them in smaller uploads",
            )
        if not most and not cap:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            if most:
                pipe.llen(self.settings.queue)
            if cap:
                key, now = queued_set(tenant), time.time()
                pipe.zremrangebyscore(key, "-inf", now - self._forget_after())
                pipe.zcard(key)
                pipe.zadd(key, {str(job_id): now for job_id in job_ids})
                pipe.expire(key, self._forget_after())
            answers = pipe.execute()
        except redis.RedisError as exc:
            log.warning("queue depth and queued images not counted, Redis is not answering: %s", exc)
            return
        waiting = answers[0] if most else 0
        queued = answers[-3] if cap else 0
        if most and waiting >= most:
            self.not_queued(tenant if cap else None, job_ids)
            raise ApiError(
                503,
                "queue_full",
                f"{waiting:,} single images are waiting for a worker (RECOG_MAX_QUEUE_DEPTH is "
                f"{most:,}); retry in a little while, or send many images as one batch",
            )
        if cap and queued + files > cap:
            self.not_queued(tenant, job_ids)
            raise ApiError(
                429,
                "too_many_queued",
                f"this tenant has {queued:,} images queued or running and this upload has {files:,}; "
                f"at most {cap:,} may wait at once (RECOG_MAX_QUEUED_IMAGES). Retry after "
                f"{RETRY_AFTER_SECONDS} s, as they finish",
            )

    def not_queued(self, tenant: str | None, job_ids: Sequence[uuid.UUID]) -> None:
        """Take back a count of jobs that were not accepted after all."""
        if tenant is None or not self.settings.max_queued_images or not job_ids:
            return
        try:
            self.redis.zrem(queued_set(tenant), *[str(job_id) for job_id in job_ids])
        except redis.RedisError as exc:
            log.warning("refused jobs left counted as queued, Redis is not answering: %s", exc)

    def _forget_after(self) -> int:
        """A job still unfinished after the sweeper stopped sending it again never will be."""
        return self.settings.sweep_hours * 3600
