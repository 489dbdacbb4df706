"""Send again the jobs whose task message was lost.

Kombu's Redis transport pops a message before it records it as unacknowledged; a worker killed
between the two loses the message for good (seen here about once in twelve SIGKILL tests).
Every job sent to the queue has a row in open_jobs until its final write removes it, so a job
still open long after it was last sent is sent again. Tasks are idempotent, so a job that was
merely slow costs one extra status read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.jobs import FINAL_STATES, as_utc, hour_bucket, utcnow
from shared.messaging import JobMessage, send_single_job
from shared.store import ResultStore, StoreUnavailable, open_store

log = logging.getLogger(__name__)


def sweep(
    store: ResultStore,
    send: Callable[[JobMessage], None],
    stale_after: timedelta,
    look_back_hours: int,
    now: datetime | None = None,
) -> int:
    """Re-send open jobs last sent more than stale_after ago; returns how many were sent."""
    now = now or utcnow()
    resent = 0
    for hours_ago in range(look_back_hours, -1, -1):
        hour = hour_bucket(now - timedelta(hours=hours_ago))
        rows = [r for r in store.open_jobs(hour) if now - as_utc(r["sent_at"]) > stale_after]
        statuses = store.look_up([r["job_id"] for r in rows], [])[0] if rows else {}
        for row in rows:
            if statuses.get(row["job_id"]) in FINAL_STATES:
                store.forget_open(hour, row["job_id"])
                continue
            if row["message"] is None:  # missing or unreadable (see open_jobs): nothing to send
                log.warning("open job %s has no task message to send again; left alone", row["job_id"])
                continue
            send(row["message"])
            store.resent(hour, row["message"], now)
            resent += 1
    if resent:
        log.warning("sent %d open jobs again (their messages were lost or late)", resent)
    return resent


def start_sweeping(app) -> threading.Thread:
    """A daemon thread in the worker's main process; several workers sweeping is harmless."""
    settings = app.settings

    def send(message: JobMessage) -> None:
        send_single_job(app, settings, message)

    def loop() -> None:
        store = None
        stale_after = timedelta(seconds=settings.visibility_timeout + settings.sweep_seconds)
        while not stop.wait(settings.sweep_seconds):
            try:
                store = store or open_store(settings)
                sweep(store, send, stale_after, settings.sweep_hours)
            except StoreUnavailable as exc:
                # A shut-down connection never comes back by itself: the next sweep connects anew.
                log.warning("sweeping open jobs failed, connecting again next time: %s", exc)
                if store is not None:
                    store.close()
                store = None
            except Exception:  # a sweep that fails is tried again next time
                log.exception("sweeping open jobs failed")

    stop = threading.Event()
    thread = threading.Thread(target=loop, name="recog-sweeper", daemon=True)
    thread.stop = stop
    thread.start()
    return thread
