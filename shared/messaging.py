"""Task names, queue settings and the Redis "job finished" channel both sides agree on."""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.settings import Settings

TASK_RECOGNISE = "recog.recognise"
TASK_RECOGNISE_CHUNK = "recog.recognise_chunk"


def job_channel(job_id: str) -> str:
    """Redis pub/sub channel a worker announces a finished job on, so waiters read Cassandra once."""
    return f"recog:job-finished:{job_id}"


def job_message(
    job_id: uuid.UUID,
    sha256: str,
    filename: str,
    model: str,
    created_at: datetime,
    batch_id: uuid.UUID | None = None,
    new_bytes: bool = False,
) -> dict:
    """The task payload: ids and names only, never image bytes.

    new_bytes: the image store had never held these bytes, so no earlier result can exist and
    the worker skips looking for one.
    """
    return {
        "id": str(job_id),
        "sha256": sha256,
        "filename": filename,
        "model": model,
        "created_at": created_at.isoformat(),
        "batch_id": str(batch_id) if batch_id else None,
        "new_bytes": new_bytes,
    }


def ids_repr(messages: list[dict]) -> str:
    """What Flower and the worker log show as a task's arguments: job ids, never file names or paths."""
    ids = [m["id"] for m in messages]
    batch = messages[0].get("batch_id") if messages else None
    return f"batch {batch}: {ids}" if batch else str(ids)


def send_single_job(app, settings: Settings, message: dict, **options) -> None:
    """Queue one single-image job: its task id is the job id, Flower shows only that id.

    The gateway, the sweeper and the worker's retry all send these, the same way.
    """
    app.send_task(
        TASK_RECOGNISE,
        args=[message],
        argsrepr=ids_repr([message]),
        task_id=message["id"],
        queue=settings.queue,
        **options,
    )


def celery_config(settings: Settings) -> dict:
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        # Results live in Cassandra; Celery's own result backend would be a second truth.
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": settings.queue,
        # A task is acknowledged after it ran, and requeued if its worker process dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            # Kombu sweeps for messages of dead workers every interval x throttle seconds
            # (100 s by default); one cheap sweep every tenth of the timeout brings them back
            # soon after they become due.
            "unacked_restore_interval": min(10, max(1, settings.visibility_timeout // 10)),
            "unacked_restore_throttle": 1,
        },
        # Publishing must fail fast when Redis is down, so the gateway can answer 503.
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "broker_connection_timeout": 3,
        # Flower shows tasks from these events.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # Loading TensorFlow and the model in worker_process_init takes longer than 4 s.
        "worker_proc_alive_timeout": 120,
        "worker_concurrency": settings.worker_concurrency,
        # celery-batches can only gather what the worker has prefetched.
        "worker_prefetch_multiplier": max(4, settings.max_batch),
        "task_routes": {
            TASK_RECOGNISE: {"queue": settings.queue},
            TASK_RECOGNISE_CHUNK: {"queue": settings.bulk_queue},
        },
    }
