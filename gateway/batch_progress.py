"""A batch's progress, counted from its rows: a retried task rewrites a row, it never adds one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from shared.jobs import DONE, FAILED, QUEUED, RUNNING, iso


def batch_progress(header: dict, rows: Iterable[dict], now: datetime) -> dict:
    counts: Counter[str] = Counter()
    cached = 0
    first_finish = last_finish = None
    for row in rows:
        counts[row["status"]] += 1
        cached += bool(row["cached"])
        finished = row["finished_at"]
        if finished is not None:
            first_finish = finished if first_finish is None else min(first_finish, finished)
            last_finish = finished if last_finish is None else max(last_finish, finished)
    total = sum(counts.values())
    final = counts[DONE] + counts[FAILED]
    created = header["created_at"]
    complete = total > 0 and final == total
    # Throughput so far over the batch's own life, so queue time ahead of it counts too.
    elapsed = ((last_finish if complete else _naive(now)) - created).total_seconds()
    rate = final / elapsed if final and elapsed > 0 else None
    return {
        "id": str(header["batch_id"]),
        "name": header["name"],
        "model": header["model_name"],
        "status": _status(total, counts, complete),
        "total": total,
        "queued": counts[QUEUED],
        "running": counts[RUNNING],
        "done": counts[DONE],
        "failed": counts[FAILED],
        "cached": cached,
        "progress_percent": round(100.0 * final / total, 1) if total else 0.0,
        "images_per_second": round(rate, 1) if rate else None,
        "eta_seconds": 0.0 if complete else (round((total - final) / rate, 1) if rate else None),
        "created_at": iso(created),
        "first_finished_at": iso(first_finish),
        "finished_at": iso(last_finish) if complete else None,
    }


def _status(total: int, counts: Counter, complete: bool) -> str:
    if not complete:
        return "running" if counts[RUNNING] or counts[DONE] or counts[FAILED] else "queued"
    if counts[FAILED] == 0:
        return "done"
    return "failed" if counts[DONE] == 0 else "partial"


def _naive(moment: datetime) -> datetime:
    # Rows come back from the driver as naive UTC datetimes.
    return moment.replace(tzinfo=None)
