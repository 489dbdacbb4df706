"""Run a list of job messages: skip finished ones, mark running, reuse or compute, store, announce.

Plain functions over a WorkerRuntime, so they are tested without Celery.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

import redis

from model.registry import UnknownModel
from shared.cassandra_store import JobKey, Outcome
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
    runtime.store.mark_running([_key(m) for m in todo], worker, started)
    outcomes: list[Outcome] = []
    for model_name in sorted({m["model"] for m in todo}):
        group = [m for m in todo if m["model"] == model_name]
        outcomes.extend(_recognise_group(runtime, group, model_name, worker, started))
    runtime.store.finish(outcomes)
    _announce(runtime.redis, [o.job_id for o in outcomes])
    return outcomes


def fail_jobs(runtime, messages: list[dict], worker: str, error: str) -> None:
    """Mark jobs failed after the task gave up, so none stays 'running' forever."""
    runtime.store.finish([_outcome(m, worker, utcnow(), error=error) for m in messages])
    _announce(runtime.redis, [uuid.UUID(m["id"]) for m in messages])


def _recognise_group(runtime, group: list[dict], model_name: str, worker: str, started) -> list[Outcome]:
    try:
        recogniser = runtime.recogniser(model_name)
    except UnknownModel as exc:
        return [_outcome(m, worker, utcnow(), error=str(exc)) for m in group]
    info = recogniser.info
    model = {"model_name": info.name, "model_version": info.version}
    earlier = runtime.store.recall([(m["sha256"], info.name, info.version) for m in group])
    outcomes, blobs, fresh = [], [], []
    for m, seen in zip(group, earlier, strict=True):
        if seen is not None:  # same bytes, same weights: the answer is already known
            outcomes.append(
                _outcome(
                    m,
                    worker,
                    utcnow(),
                    **_recalled(seen),
                    **model,
                    cached=True,
                    queue_ms=_queue_ms(m, started),
                )
            )
            continue
        try:
            blobs.append(runtime.images.get(m["sha256"]))
            fresh.append(m)
        except ImageMissing as exc:
            outcomes.append(_outcome(m, worker, utcnow(), error=str(exc)))
    batch = recogniser.recognise_bytes(blobs, runtime.settings.max_image_pixels)
    finished = utcnow()
    for m, result in zip(fresh, batch.predictions, strict=True):
        if isinstance(result, ImageRejected):
            outcomes.append(_outcome(m, worker, finished, error=str(result)))
            continue
        outcomes.append(
            _outcome(
                m,
                worker,
                finished,
                label=result.label,
                confidence=result.confidence,
                probabilities=result.probabilities,
                reason=result.reason,
                **model,
                queue_ms=_queue_ms(m, started),
                inference_ms=round(batch.inference_ms, 3),
                batch_size=batch.batch_size,
            )
        )
    return outcomes


def _recalled(row: dict) -> dict:
    return {
        "label": row["label"],
        "confidence": row["confidence"],
        "probabilities": list(row["probabilities"] or []),
        "reason": row["reason"],
    }


def _queue_ms(m: dict, started: datetime) -> float:
    return round(max((started - datetime.fromisoformat(m["created_at"])).total_seconds() * 1000, 0.0), 3)


def _key(m: dict) -> JobKey:
    batch = m.get("batch_id")
    return JobKey(uuid.UUID(m["id"]), uuid.UUID(batch) if batch else None, m["filename"])


def _outcome(m: dict, worker: str, finished: datetime, **fields) -> Outcome:
    key = _key(m)
    return Outcome(
        job_id=key.job_id,
        sha256=m["sha256"],
        filename=m["filename"],
        worker=worker,
        finished_at=finished,
        batch_id=key.batch_id,
        **fields,
    )


def _announce(client: redis.Redis, job_ids: list[uuid.UUID]) -> None:
    """Best effort, in one round trip: a waiter that misses this still sees the row on its next poll."""
    try:
        pipe = client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.publish(job_channel(str(job_id)), "finished")
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not announce finished jobs on Redis: %s", exc)
