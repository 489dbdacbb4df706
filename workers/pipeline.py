"""Run a list of job messages: skip finished ones, mark running, reuse or compute, store, announce.

Waited-for jobs are computed while their statuses are read, and kept only if still open. Plain
functions over a WorkerRuntime (or anything with its store, images, redis, settings and
recogniser), so they are tested without Celery.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from datetime import datetime
from functools import partial

import redis

from model.registry import UnknownModel
from shared.decode import ImageRejected
from shared.image_store import ImageMissing
from shared.jobs import CANCEL_ASKED, FINAL_STATES, QUEUED, Outcome, utcnow
from shared.messaging import JobMessage, announcement, job_channel, queued_set
from workers.metrics import BATCH_SIZE, INFERENCE_SECONDS, JOB_SECONDS, JOBS_CACHED, JOBS_FINISHED
from workers.priority import singles_busy, yield_to_singles

log = logging.getLogger(__name__)

# An error is written to three rows of a job: kept short, 8 jobs' rows stay well under the 50 kB
# Cassandra accepts in one batch (shared/store/cassandra_results.finish_groups).
MAX_ERROR_CHARS = 2_000
UNRECORDED = "the submission was not completely recorded (the gateway answered 503); submit the image again"


def run_jobs(
    runtime, messages: list[JobMessage], worker: str, unstarted: Collection[uuid.UUID] = ()
) -> list[Outcome]:
    """Idempotent: a redelivered message for a finished job does nothing.

    Cassandra round trips are what a chunk mostly waits on, so statuses and earlier results are
    asked for together, and the 'running' marks are not waited for before recognising.
    unstarted: jobs the caller knows have their row and cannot be final yet (a chunk's first
    start, workers/alone.py): their statuses are not read. A single job has no such marker (a
    duplicate publish or a Redis failover hands its message over again unmarked), so its status
    is always read, in the same round trip as its earlier result.
    """
    models = _load_models(runtime, {m.model for m in messages})
    # A chunk yields to single jobs in Cassandra (workers/priority.py); single jobs say they are
    # on their way. A batch job run alone (workers/alone.py) does not yield: 64 of them, each
    # paced, could run a chunk into its time limit.
    chunk = len(messages) > 1 and any(m.batch_id for m in messages)
    pace = partial(yield_to_singles, runtime.redis) if chunk else None
    if pace is None:
        singles_busy(runtime.redis)
    else:
        pace()
    started = utcnow()
    # Bytes the image store had never held cannot have an earlier result: no need to ask.
    known = [m for m in messages if not isinstance(models[m.model], str) and not m.new_bytes]
    # A single job's first send of such bytes has its image read and prepared while Cassandra
    # reads its status, not after: the read (about 2 ms) then costs it no time. Prepared for
    # nothing only when its message came twice unmarked (Redis restoring it, a duplicate publish)
    # and its job proves final, or Cassandra is down. Anything sent again (alone, resent, another
    # attempt) is read first and prepared only if still open; so is a chunk's every image, its
    # statuses read only when it is delivered again.
    new = [
        m
        for m in messages
        if not isinstance(models[m.model], str) and m.new_bytes and m.batch_id is None and first_send(m)
    ]
    # Waited-for jobs (their request holds the answer; their worker writes their row, and marks
    # none running) are recognised meanwhile too, when every job of their model here is one: one
    # model call still, and nothing written before the statuses are known.
    waited = {m.job_id for m in new if m.upload is not None}
    early = sorted(
        name
        for name in {m.model for m in new}
        if all(m.job_id in waited for m in messages if m.model == name)
    )
    prepared: dict = {}
    recognised: dict = {}

    def meanwhile() -> None:
        prepared.update(_read_and_prepare(runtime, models, new))
        for name in early:
            ids = [m.job_id for m in new if m.model == name]
            recognised.update(_model_call(models[name], ids, prepared))

    statuses, earlier = runtime.store.look_up(
        [m.job_id for m in messages if m.job_id not in unstarted],
        [(m.sha256, models[m.model].info.name, models[m.model].info.version, m.tenant) for m in known],
        meanwhile=meanwhile,
    )
    statuses.update((job_id, QUEUED) for job_id in unstarted)
    seen = {m.job_id: row for m, row in zip(known, earlier, strict=True)}
    todo = [m for m in messages if statuses.get(m.job_id) not in FINAL_STATES]
    if not todo:
        return []
    # Work is written before its job rows; a job sent again by the sweeper with still no row is
    # one whose intake failed half-way (the client was answered 503): failed for the record.
    unrecorded = [m for m in todo if m.job_id not in statuses and m.resent]
    todo = [m for m in todo if m not in unrecorded]
    outcomes: list[Outcome] = [_outcome(m, worker, started, error=UNRECORDED) for m in unrecorded]
    cancelled = cancels_asked(runtime.store, todo, statuses)
    outcomes += [_cancelled(m, worker, started) for m in todo if m.job_id in cancelled]
    todo = [m for m in todo if m.job_id not in cancelled]
    # A job whose row the worker writes (its request waits for the answer, so nobody else knows
    # its id, unless the wait ran out and answered 202) is not marked running: a write for a row
    # nobody reads, almost always. Such a job reads 'queued' until it ends, after a 202.
    if pace is not None:
        pace()
    pending = runtime.store.mark_running(
        [m.key for m in todo if m.upload is None], worker, started, wait=False
    )
    for model_name in sorted({m.model for m in todo}):
        group = [m for m in todo if m.model == model_name]
        recogniser = models[model_name]
        if isinstance(recogniser, str):
            outcomes.extend(_outcome(m, worker, utcnow(), error=recogniser) for m in group)
        else:
            outcomes.extend(
                _recognise_group(runtime, recogniser, group, seen, prepared, recognised, worker, started)
            )
    for o in outcomes:
        if o.upload is not None and not o.cancelled:  # its row is this write's alone: when it started
            o.upload["started_at"] = started
    if pace is None:
        singles_busy(runtime.redis)  # again: the write it is for comes now
    runtime.store.finish(outcomes, after=pending, pace=pace)
    _announce(runtime.redis, outcomes, started)
    _count(outcomes)
    return outcomes


def cancels_asked(store, messages: list[JobMessage], statuses: dict | None = None) -> set[uuid.UUID]:
    """The jobs among messages whose cancel was asked for: a single job's as its status was read
    (statuses: look_up's), a batch job's on its batch's header, one read for a whole chunk."""
    found = {m.job_id for m in messages if statuses and statuses.get(m.job_id) == CANCEL_ASKED}
    batch_jobs = [m.key for m in messages if m.batch_id is not None]
    return found | (store.cancelled_batch_jobs(batch_jobs) if batch_jobs else set())


def first_send(m: JobMessage) -> bool:
    """As the gateway sent it (after writing its row, but for a waited-for single job): not sent
    again by a worker (an attempt more, or alone) nor by the sweeper (resent)."""
    return m.attempt == 0 and not (m.resent or m.alone)


def _count(outcomes: list[Outcome]) -> None:
    """Metrics of jobs whose final rows are written (counted once they are in Cassandra)."""
    now = utcnow()
    for o in outcomes:
        JOBS_FINISHED.labels(o.status, o.model_name or "-").inc()
        if o.cached:
            JOBS_CACHED.inc()
        if o.created_at is not None and not o.cancelled:
            JOB_SECONDS.observe(max((now - o.created_at).total_seconds(), 0.0))


def _load_models(runtime, names: set[str]) -> dict:
    """Each named model, or the reason it cannot be had (so its jobs fail, the rest go on)."""
    models = {}
    for name in names:
        try:
            models[name] = runtime.recogniser(name)
        except UnknownModel as exc:
            models[name] = str(exc)
    return models


def end_cancelled(runtime, messages: list[JobMessage], worker: str) -> tuple[list[Outcome], list[JobMessage]]:
    """The open jobs among messages (their statuses read): those whose cancel was asked for ended
    'cancelled' (their outcomes), and the rest, still to run or to fail."""
    statuses, _ = runtime.store.look_up([m.job_id for m in messages], [])
    left = [m for m in messages if statuses.get(m.job_id) not in FINAL_STATES]
    asked = cancels_asked(runtime.store, left, statuses)
    ended = [_cancelled(m, worker, utcnow()) for m in left if m.job_id in asked]
    if ended:
        runtime.store.finish(ended)
        _announce(runtime.redis, ended)
        _count(ended)
    return ended, [m for m in left if m.job_id not in asked]


def fail_jobs(runtime, messages: list[JobMessage], worker: str, error: str) -> list[Outcome]:
    """Mark jobs failed after the task gave up, so none stays 'running' forever."""
    outcomes = [_outcome(m, worker, utcnow(), error=error) for m in messages]
    runtime.store.finish(outcomes)
    _announce(runtime.redis, outcomes)
    _count(outcomes)
    return outcomes


def _read_and_prepare(runtime, models: dict, messages: list[JobMessage]) -> dict:
    """Each job's model input (Recogniser.prepare), or ImageMissing when its image is gone."""
    found = runtime.images.get_many([m.sha256 for m in messages])
    max_pixels = runtime.settings.max_image_pixels
    return {
        m.job_id: data if isinstance(data, ImageMissing) else models[m.model].prepare(data, max_pixels)
        for m, data in zip(messages, found, strict=True)
    }


def _model_call(recogniser, job_ids: list, prepared: dict) -> dict:
    """One model call for those jobs whose image was found: by job id, its prediction (or why the
    image was rejected), the call's BatchOutcome and when it ended."""
    ready = [job_id for job_id in job_ids if not isinstance(prepared[job_id], ImageMissing)]
    if not ready:
        return {}
    batch = recogniser.recognise_prepared([prepared[job_id] for job_id in ready])
    finished = utcnow()
    if batch.batch_size:
        BATCH_SIZE.observe(batch.batch_size)
        INFERENCE_SECONDS.observe(batch.inference_ms / 1000)
    return {
        job_id: (result, batch, finished) for job_id, result in zip(ready, batch.predictions, strict=True)
    }


def _recognise_group(
    runtime,
    recogniser,
    group: list[JobMessage],
    seen: dict,
    prepared: dict,
    recognised: dict,
    worker: str,
    started,
) -> list[Outcome]:
    """prepared and recognised: what was read and prepared (_read_and_prepare), and recognised
    (_model_call), already, by job id."""
    info = recogniser.info
    model = {"model_name": info.name, "model_version": info.version}
    outcomes = []
    to_read = []
    for m in group:
        if seen.get(m.job_id) is not None:  # same bytes, same weights: the answer is already known
            outcomes.append(
                _outcome(
                    m,
                    worker,
                    utcnow(),
                    **_recalled(seen[m.job_id]),
                    **model,
                    cached=True,
                    queue_ms=_queue_ms(m, started),
                )
            )
        else:
            to_read.append(m)
    late = [m for m in to_read if m.job_id not in prepared]
    prepared = {**prepared, **_read_and_prepare(runtime, {m.model: recogniser for m in late}, late)}
    # A batch's cancel asked for while its chunk was read and prepared still stops it before the
    # model call: one more read of the batch's header. (A chunk is one model call: images already
    # in it finish.)
    batch_jobs = [m for m in to_read if m.batch_id is not None and m.job_id not in recognised]
    stopped = cancels_asked(runtime.store, batch_jobs) if batch_jobs else set()
    outcomes += [_cancelled(m, worker, utcnow()) for m in to_read if m.job_id in stopped]
    to_read = [m for m in to_read if m.job_id not in stopped]
    # Unless recognised meanwhile (the whole group then was), one call for the group.
    results = {
        **recognised,
        **_model_call(recogniser, [m.job_id for m in to_read if m.job_id not in recognised], prepared),
    }
    for m in to_read:
        if isinstance(prepared[m.job_id], ImageMissing):
            outcomes.append(_outcome(m, worker, utcnow(), error=str(prepared[m.job_id])))
            continue
        result, batch, finished = results[m.job_id]
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


def _queue_ms(m: JobMessage, started: datetime) -> float:
    return round(max((started - m.created_at).total_seconds() * 1000, 0.0), 3)


def _cancelled(m: JobMessage, worker: str, finished: datetime) -> Outcome:
    """Its model named only for the metrics' label: a cancel writes none."""
    return _outcome(m, worker, finished, cancelled=True, model_name=m.model)


def _outcome(m: JobMessage, worker: str, finished: datetime, **fields) -> Outcome:
    if fields.get("error"):  # an exception's text can be any length; a logged batch cannot
        fields["error"] = fields["error"][:MAX_ERROR_CHARS]
    return Outcome(
        upload=None if m.upload is None else {**m.upload, "model_name": m.model},
        job_id=m.job_id,
        sha256=m.sha256,
        filename=m.filename,
        worker=worker,
        finished_at=finished,
        batch_id=m.batch_id,
        created_at=m.created_at,
        tenant=m.tenant,
        **fields,
    )


def _announce(client: redis.Redis, outcomes: list[Outcome], started_at: datetime | None = None) -> None:
    """Best effort, in one round trip, after the rows are written: a waiter answers from the
    announcement, one that misses it still sees the row on its next poll, and a tenant's count of
    queued images forgets a job left there after a day at most. started_at: when the single jobs
    among outcomes were marked running."""
    try:
        pipe = client.pipeline(transaction=False)
        for o in outcomes:
            # A batch job's row has no start; nor has a cancelled job's.
            started = started_at if o.batch_id is None and not o.cancelled else None
            pipe.publish(job_channel(str(o.job_id)), announcement(o, started))
            if o.tenant:
                pipe.zrem(queued_set(o.tenant), str(o.job_id))
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not announce finished jobs on Redis: %s", exc)
