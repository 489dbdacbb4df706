"""A batch's failed jobs queued again (POST /v1/batches/<id>/retry): same batch, same job ids, the
counts recounted from the lines, so done + failed + cancelled stays the total throughout."""

from __future__ import annotations

import uuid

from gateway.intake import send_or_leave, stored_rows
from shared.jobs import FAILED, as_utc, utcnow
from shared.messaging import JobMessage, Work
from shared.parts import count_lines


def requeue_failed(services, header: dict) -> int:
    """How many failed jobs were queued again (each in a chunk of RECOG_CHUNK_SIZE, sent again
    by the sweeper if Redis refuses it now)."""
    store, settings = services.store, services.settings
    batch_id = header["batch_id"]
    failed = [line["job_id"] for line in store.batch_rows(batch_id) if line["status"] == FAILED]
    # A file refused at upload would be refused again: it stays failed.
    retried = stored_rows(store, failed)
    if not retried:
        return 0
    # Their rows name these images again from now: the collector must not count them as unused.
    services.images.touch(sorted({(row["sha256"], row["size_bytes"] or 0) for row in retried}))
    tenant = header.get("tenant") or None
    services.quotas.admit(tenant, [row["job_id"] for row in retried], single=False)
    members = (
        store.parts_members(batch_id, list(store.batch_parts(batch_id))) if header.get("counted") else {}
    )
    part_of = {key.job_id: part for part, keys in members.items() for key in keys}
    messages = [_message(row, batch_id, part_of.get(row["job_id"])) for row in retried]
    now = utcnow()
    # Sent again, not sent first: the worker reads their statuses, so two retries at once
    # recognise each job once.
    work = [
        Work(uuid.uuid4(), tuple(messages[start : start + settings.chunk_size]), True, now, resent=True)
        for start in range(0, len(messages), settings.chunk_size)
    ]
    try:
        store.requeue([m.key for m in messages], work)
    except Exception:
        services.quotas.not_queued(tenant, [m.job_id for m in messages])
        raise
    for part in {m.part for m in messages if m.part is not None}:
        store.count_part(batch_id, part, count_lines(store.batch_lines(members[part])))
    send_or_leave(services, work, "a retry's")
    return len(messages)


def _message(row: dict, batch_id: uuid.UUID, part: uuid.UUID | None) -> JobMessage:
    return JobMessage(
        row["job_id"],
        row["sha256"],
        row["filename"],
        row["model_name"],
        as_utc(row["created_at"]),
        batch_id,
        part=part,
        tenant=row["tenant"] or None,
    )
