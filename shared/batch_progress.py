"""A batch's progress, summed from its parts' counts (shared/parts.py); a batch made before parts
existed is counted from its lines, as one part."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from shared.jobs import as_utc, iso
from shared.parts import PartCount, count_lines, earlier, later

# What a batch ends in; "cancelling" is not final: its workers have yet to reach every open job.
BATCH_FINAL = frozenset({"done", "partial", "failed", "cancelled"})


def batch_counts(store, header: dict) -> dict[uuid.UUID | None, PartCount]:
    """{part id: its counts}; {None: the lines' counts} for a batch made before parts."""
    if header.get("counted"):
        return store.batch_parts(header["batch_id"])
    return {None: count_lines(store.batch_rows(header["batch_id"]))}


def batch_progress(header: dict, parts: Iterable[PartCount], now: datetime) -> dict:
    total = running = done = failed = cached = cancelled = 0
    first_finish = last_finish = None
    for part in parts:
        total += part.total
        # A chunk's 'running' mark can land after another run counted its part: never more
        # running than are open.
        running += min(part.running, part.total - part.final)
        done += part.done
        failed += part.failed
        cached += part.cached
        cancelled += part.cancelled
        first_finish = earlier(first_finish, part.first_finished)
        last_finish = later(last_finish, part.last_finished)
    final = done + failed + cancelled
    created = header["created_at"]
    asked = header.get("cancel_requested_at")
    # A cancelled batch may hold no file at all: it ends all the same.
    complete = final == total and (total > 0 or asked is not None)
    # Throughput so far over the batch's own life, so queue time ahead of it counts too; of the
    # images recognised, since a cancelled one costs next to nothing.
    until = last_finish if complete and last_finish else now
    elapsed = (as_utc(until) - as_utc(created)).total_seconds()
    rate = (done + failed) / elapsed if done + failed and elapsed > 0 else None
    return {
        "id": str(header["batch_id"]),
        "name": header["name"],
        "model": header["model_name"],
        "status": _status(total, done, failed, cancelled, complete, asked is not None, bool(running)),
        "total": total,
        "queued": total - final - running,
        "running": running,
        "done": done,
        "failed": failed,
        "cached": cached,
        "cancelled": cancelled,
        "progress_percent": round(100.0 * final / total, 1) if total else 0.0,
        "images_per_second": round(rate, 1) if rate else None,
        "eta_seconds": 0.0 if complete else _eta(total - final, rate, asked is not None),
        "closed": bool(header.get("closed")),
        "cancel_requested_at": iso(asked),
        "created_at": iso(created),
        "first_finished_at": iso(first_finish),
        # A batch cancelled before any file finished ended when its cancel was asked for.
        "finished_at": iso(last_finish or asked) if complete else None,
    }


def _eta(left: int, rate: float | None, asked: bool) -> float | None:
    """None when unknown, or when what is left is being cancelled (workers skip it, at no rate
    recognition tells)."""
    return None if asked or not rate else round(left / rate, 1)


def _status(
    total: int, done: int, failed: int, cancelled: int, complete: bool, asked: bool, running: bool
) -> str:
    """asked: the whole batch's cancel was asked for."""
    if not complete:
        if asked:
            return "cancelling"
        return "running" if running or done or failed or cancelled else "queued"
    if cancelled == total or (asked and (cancelled or not total)):
        return "cancelled"
    if failed == 0 and cancelled == 0:
        return "done"
    return "failed" if done == 0 and cancelled == 0 else "partial"
