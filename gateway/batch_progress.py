"""A batch's progress, summed from its parts' counts (shared/parts.py); a batch made before parts
existed is counted from its lines, as one part."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from shared.jobs import as_utc, iso
from shared.parts import PartCount, count_lines, earlier, later


def batch_counts(store, header: dict) -> dict[uuid.UUID | None, PartCount]:
    """{part id: its counts}; {None: the lines' counts} for a batch made before parts."""
    if header.get("counted"):
        return store.batch_parts(header["batch_id"])
    return {None: count_lines(store.batch_rows(header["batch_id"]))}


def batch_progress(header: dict, parts: Iterable[PartCount], now: datetime) -> dict:
    total = running = done = failed = cached = 0
    first_finish = last_finish = None
    for part in parts:
        total += part.total
        # A chunk's 'running' mark can land after another run counted its part: never more
        # running than are open.
        running += min(part.running, part.total - part.final)
        done += part.done
        failed += part.failed
        cached += part.cached
        first_finish = earlier(first_finish, part.first_finished)
        last_finish = later(last_finish, part.last_finished)
    final = done + failed
    created = header["created_at"]
    complete = total > 0 and final == total
    # Throughput so far over the batch's own life, so queue time ahead of it counts too.
    until = last_finish if complete and last_finish else now
    elapsed = (as_utc(until) - as_utc(created)).total_seconds()
    rate = final / elapsed if final and elapsed > 0 else None
    return {
        "id": str(header["batch_id"]),
        "name": header["name"],
        "model": header["model_name"],
        "status": _status(total, running, done, failed, complete),
        "total": total,
        "queued": total - final - running,
        "running": running,
        "done": done,
        "failed": failed,
        "cached": cached,
        "progress_percent": round(100.0 * final / total, 1) if total else 0.0,
        "images_per_second": round(rate, 1) if rate else None,
        "eta_seconds": 0.0 if complete else (round((total - final) / rate, 1) if rate else None),
        "closed": bool(header.get("closed")),
        "created_at": iso(created),
        "first_finished_at": iso(first_finish),
        "finished_at": iso(last_finish) if complete else None,
    }


def _status(total: int, running: int, done: int, failed: int, complete: bool) -> str:
    if not complete:
        return "running" if running or done or failed else "queued"
    if failed == 0:
        return "done"
    return "failed" if done == 0 else "partial"
