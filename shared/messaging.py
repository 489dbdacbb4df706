"""What crosses the queue: task names, the typed job message, how to send it, Celery's settings,
and the Redis "job finished" channel."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.jobs import UPLOAD_COLUMNS, JobKey, Outcome, utcnow
from shared.settings import Settings

TASK_RECOGNISE = "recog.recognise"
TASK_RECOGNISE_CHUNK = "recog.recognise_chunk"


# Each attempt's error a message carries: all 9 fit a job's error (2,000 characters).
ATTEMPT_ERROR_CHARS = 200


def job_channel(job_id: str) -> str:
    """Redis pub/sub channel a worker announces a finished job on, once its row is written."""
    return f"recog:job-finished:{job_id}"


# The job row's columns a finished job's announcement carries, by how it ended: the same ones its
# final write sets (shared/store/cassandra_results.finish_statements), so a waiter can answer
# from the announcement what a read of the row would say.
_FAILED_FIELDS = ("status", "error", "worker", "finished_at")
_CANCELLED_FIELDS = ("status", "worker", "finished_at")
_DONE_FIELDS = (
    "status",
    "model_name",
    "model_version",
    "worker",
    "finished_at",
    "queue_ms",
    "inference_ms",
    "batch_size",
    "cached",
)
_BLANK_FIELDS = (*_DONE_FIELDS, "reason")
_LABELLED_FIELDS = (*_DONE_FIELDS, "label", "confidence", "probabilities")
_TIMES = ("finished_at", "started_at")


def announcement(o: Outcome, started_at: datetime | None = None) -> str:
    """The columns o's final write set, as JSON; started_at: when its job row was marked running."""
    if o.cancelled:
        names = _CANCELLED_FIELDS
    elif o.error is not None:
        names = _FAILED_FIELDS
    else:
        names = _BLANK_FIELDS if o.label is None else _LABELLED_FIELDS
    fields = {name: getattr(o, name) for name in names if name != "status"}
    fields["status"] = o.status
    if started_at is not None:
        fields["started_at"] = started_at
    for name in _TIMES:
        if name in fields:
            fields[name] = fields[name].isoformat()
    return json.dumps(fields)


def read_announcement(text: str | bytes) -> dict | None:
    """The columns an announcement carries, or None for one without them (a worker of an earlier
    version announced the bare word "finished"): then the row must be read."""
    try:
        fields = json.loads(text)
        for name in _TIMES:
            if name in fields:
                fields[name] = datetime.fromisoformat(fields[name])
    except (ValueError, TypeError):
        return None
    return fields if isinstance(fields, dict) and "status" in fields else None


def queued_set(tenant: str) -> str:
    """Redis sorted set of a tenant's unfinished job ids, scored by when they were accepted: the
    gateway adds, the worker that ends a job removes (gateway/quotas.py)."""
    return f"recog:queued:{tenant}"


@dataclass(frozen=True)
class JobMessage:
    """One job's task message: ids and names only, never image bytes. JSON on the wire.

    new_bytes: the image store had never held these bytes, so no earlier result can exist and
    the worker skips looking for one. attempt: how often a transient failure sent it again.
    work_id and sent_at name the task message it travelled in and when that was sent (see Work):
    a worker reports the work it holds, and how far into each queue it has read, by them.
    resent: the sweeper sent it (its first send was lost). alone: a pool process died running it
    among others, so it runs by itself next time (workers/alone.py). part: the part of its batch
    it is counted in (shared/parts.py). tenant: whose job it is; the cache of earlier results
    is the tenant's own. upload: the job row's upload columns (shared/jobs.UPLOAD_COLUMNS) when
    the gateway wrote no row, its request waiting for the answer: the worker writes the whole row
    with the result. errors: why each earlier attempt failed, for the error of a job that runs out
    of attempts.
    """

    job_id: uuid.UUID
    sha256: str
    filename: str
    model: str
    created_at: datetime
    batch_id: uuid.UUID | None = None
    new_bytes: bool = False
    attempt: int = 0
    work_id: uuid.UUID | None = None
    sent_at: datetime | None = None
    resent: bool = False
    alone: bool = False
    part: uuid.UUID | None = None
    tenant: str | None = None
    upload: dict | None = None
    errors: tuple[str, ...] = ()

    @property
    def key(self) -> JobKey:
        return JobKey(self.job_id, self.batch_id, self.filename, self.part)

    def next_attempt(self, error: str, alone: bool = False) -> JobMessage:
        """This job sent again by a worker after error: one attempt more, stamped now; alone once a
        pool process died running it."""
        again = dataclasses.replace(self, attempt=self.attempt + 1, sent_at=utcnow())
        return dataclasses.replace(again, alone=self.alone or alone).failed_with(error)

    def failed_with(self, error: str) -> JobMessage:
        """This message with one attempt's error more (each kept short: a message travels whole)."""
        return dataclasses.replace(self, errors=(*self.errors, error[:ATTEMPT_ERROR_CHARS]))

    def resend_alone(self) -> JobMessage:
        """Sent again after a pool process died while it ran alone, stamped now; no attempt more."""
        return dataclasses.replace(self, sent_at=utcnow())

    def to_dict(self) -> dict:
        return {
            "id": str(self.job_id),
            "sha256": self.sha256,
            "filename": self.filename,
            "model": self.model,
            "created_at": self.created_at.isoformat(),
            "batch_id": str(self.batch_id) if self.batch_id else None,
            "new_bytes": self.new_bytes,
            "attempt": self.attempt,
            "work_id": str(self.work_id) if self.work_id else None,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "resent": self.resent,
            "alone": self.alone,
            "part": str(self.part) if self.part else None,
            "tenant": self.tenant,
            **({"upload": self.upload} if self.upload is not None else {}),
            **({"errors": list(self.errors)} if self.errors else {}),
        }

    @classmethod
    def from_dict(cls, raw: dict) -> JobMessage:
        """Also reads messages queued by earlier versions (no attempt, work_id, sent_at, part,
        tenant or upload)."""
        return cls(
            job_id=uuid.UUID(raw["id"]),
            sha256=raw["sha256"],
            filename=raw["filename"],
            model=raw["model"],
            created_at=datetime.fromisoformat(raw["created_at"]),
            batch_id=uuid.UUID(raw["batch_id"]) if raw.get("batch_id") else None,
            new_bytes=bool(raw.get("new_bytes")),
            attempt=int(raw.get("attempt", 0)),
            work_id=uuid.UUID(raw["work_id"]) if raw.get("work_id") else None,
            sent_at=datetime.fromisoformat(raw["sent_at"]) if raw.get("sent_at") else None,
            resent=bool(raw.get("resent")),
            alone=bool(raw.get("alone")),
            part=uuid.UUID(raw["part"]) if raw.get("part") else None,
            tenant=raw.get("tenant"),
            upload=_upload(raw.get("upload")),
            errors=_errors(raw.get("errors")),
        )


def _errors(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(e, str) for e in raw):
        raise ValueError(f"not a list of errors: {raw!r}")
    return tuple(raw)


def _upload(raw: object) -> dict | None:
    if raw is None:
        return None
    # Columns a later version adds are passed over; one missing would leave the row without it.
    if not isinstance(raw, dict) or not set(UPLOAD_COLUMNS) <= raw.keys():
        raise ValueError(f"not a job's upload columns: {raw!r}")
    return {name: raw[name] for name in UPLOAD_COLUMNS}


@dataclass(frozen=True)
class Work:
    """One task message: a single job, or a chunk of a bulk submission (one model call's worth).

    Cassandra keeps each Work in open_work from before it is first sent (a waited-for single job's
    only once its wait runs out: until then its request holds it), so the sweeper can send again
    whatever is neither final, held by a live worker nor still waiting in its queue.
    """

    work_id: uuid.UUID
    messages: tuple[JobMessage, ...]
    chunk: bool
    sent_at: datetime
    resent: bool = False

    def stamped(self) -> list[JobMessage]:
        """The messages as they travel: each names this work and when it was sent."""
        return [
            dataclasses.replace(m, work_id=self.work_id, sent_at=self.sent_at, resent=self.resent)
            for m in self.messages
        ]

    def to_json(self) -> str:
        return json.dumps([m.to_dict() for m in self.messages])


def stored_messages(text: str | None) -> tuple[JobMessage, ...] | None:
    """The messages of a stored Work, or None where they are missing or unreadable."""
    try:
        raw = json.loads(text) if text else None
    except ValueError:
        return None
    messages = [read_message(item) for item in raw] if isinstance(raw, list) else [None]
    return None if any(m is None for m in messages) else tuple(messages)


def send_work(app, settings: Settings, work: Work) -> None:
    """Send a Work as its task: a single job to the singles queue, a chunk to the bulk queue."""
    messages = work.stamped()
    if work.chunk:
        send_chunk(app, settings, messages)
    else:
        send_single_job(app, settings, messages[0])


def read_message(raw: object) -> JobMessage | None:
    """A message as it came off the queue or out of storage, or None if it is not one."""
    try:
        return JobMessage.from_dict(raw)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def ids_repr(messages: Sequence[JobMessage]) -> str:
    """What Flower and the worker log show as a task's arguments: job ids, never file names or paths."""
    ids = [str(m.job_id) for m in messages]
    batch = messages[0].batch_id if messages else None
    return f"batch {batch}: {ids}" if batch else str(ids)


def send_single_job(app, settings: Settings, message: JobMessage, **options) -> None:
    """Queue one single-image job: its task id is the job id, Flower shows only that id.

    The gateway and the sweeper (through send_work) and the worker's retry send these.
    """
    app.send_task(
        TASK_RECOGNISE,
        args=[message.to_dict()],
        argsrepr=ids_repr([message]),
        task_id=str(message.job_id),
        queue=settings.queue,
        **options,
    )


def send_chunk(app, settings: Settings, messages: Sequence[JobMessage]) -> None:
    """Queue a chunk of a bulk submission: one task, one model call's worth of images."""
    app.send_task(
        TASK_RECOGNISE_CHUNK,
        args=[[m.to_dict() for m in messages]],
        argsrepr=ids_repr(messages),
        queue=settings.bulk_queue,
    )


def celery_config(settings: Settings) -> dict:
    """What every process that sends or runs tasks agrees on (workers add their own, see
    workers.worker_config)."""
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
        # Publishing must fail fast when Redis is down: the upload is answered at once (its work is
        # recorded, and the sweeper sends it later), never held up by a dead broker.
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "broker_connection_timeout": 3,
        # Flower shows tasks from the workers' events: received, started, succeeded or failed (a
        # gathered single job's only once its batch is recognised: workers/batch_events.py). No
        # 'sent' event: it cost the gateway 0.2 ms of CPU and a Redis round trip a job, 40 % of a
        # send, to list a task while it waits in its queue, whose length is on Flower's Broker
        # page and in recog_queue_depth.
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        "task_routes": {
            TASK_RECOGNISE: {"queue": settings.queue},
            TASK_RECOGNISE_CHUNK: {"queue": settings.bulk_queue},
        },
    }
