"""Run a list of job messages: skip finished ones, mark running, recognise, store, announce.

Plain functions over a WorkerRuntime, so they are tested without Celery.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

import redis

from model.registry import UnknownModel
from shared.cassandra_store import Outcome
from shared.decode import ImageRejected
from shared.image_store import ImageMissing
from shared.jobs import FINAL_STATES, utcnow
from shared.messaging import job_channel

log = logging.getLogger(__name__)


def run_jobs(runtime, messages: list[dict], worker: str) -> list[Outcome]:
    """Idempotent: a redelivered message for a finished job does nothing."""
    statuses = runtime.store.statuses([uuid.UUID(m["id"]) for m in messages])
    todo = [m for m in messages if statuses.get(uuid.UUID(m["id"])) not in FINAL_STATES]
    if not todo:
        return []
    started = utcnow()
    runtime.store.mark_running([uuid.UUID(m["id"]) for m in todo], worker, started)
    outcomes: list[Outcome] = []
    for model_name in sorted({m["model"] for m in todo}):
        group = [m for m in todo if m["model"] == model_name]
        outcomes.extend(_recognise_group(runtime, group, model_name, worker, started))
    runtime.store.finish(outcomes)
    _announce(runtime.redis, outcomes)
    return outcomes


def fail_jobs(runtime, messages: list[dict], worker: str, error: str) -> None:
    """Mark jobs failed after the task gave up, so none stays 'running' forever."""
    runtime.store.finish([_outcome(m, worker, utcnow(), error=error) for m in messages])
    _announce(runtime.redis, [uuid.UUID(m["id"]) for m in messages])


def _recognise_group(runtime, group, model_name, worker, started) -> list[Outcome]:
    try:
        recogniser = runtime.recogniser(model_name)
    except UnknownModel as exc:
        return [_outcome(m, worker, utcnow(), error=str(exc)) for m in group]
    blobs, loaded, outcomes = [], [], []
    for m in group:
        try:
            blobs.append(runtime.images.get(m["sha256"]))
            loaded.append(m)
        except ImageMissing as exc:
            outcomes.append(_outcome(m, worker, utcnow(), error=str(exc)))
    batch = recogniser.recognise_bytes(blobs, runtime.settings.max_image_pixels)
    finished = utcnow()
    for m, result in zip(loaded, batch.predictions, strict=True):
        if isinstance(result, ImageRejected):
            outcomes.append(_outcome(m, worker, finished, error=str(result)))
            continue
        queue_ms = (started - datetime.fromisoformat(m["created_at"])).total_seconds() * 1000
        outcomes.append(
            _outcome(
                m,
                worker,
                finished,
                label=result.label,
                confidence=result.confidence,
                probabilities=result.probabilities,
                reason=result.reason,
                model_name=recogniser.info.name,
                model_version=recogniser.info.version,
                queue_ms=round(max(queue_ms, 0.0), 3),
                inference_ms=round(batch.inference_ms, 3),
                batch_size=batch.batch_size,
            )
        )
    return outcomes


def _outcome(m: dict, worker: str, finished: datetime, **fields) -> Outcome:
    return Outcome(
        job_id=uuid.UUID(m["id"]),
        sha256=m["sha256"],
        filename=m["filename"],
        worker=worker,
        finished_at=finished,
        **fields,
    )


def _announce(client: redis.Redis, outcomes) -> None:
    """Best effort: a waiter that misses this still sees the row on its next poll."""
    try:
        for o in outcomes:
            client.publish(job_channel(str(getattr(o, "job_id", o))), "finished")
    except redis.RedisError as exc:
        log.warning("could not announce finished jobs on Redis: %s", exc)
