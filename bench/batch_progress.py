"""What a batch progress poll reads: the batch's parts (what GET /v1/batches/<id> does now) or
every line of the batch (what it did before, and still does for batches made before parts).
Same batches, same run, own Cassandra.

    .venv/bin/python bench/batch_progress.py --json bench/batch_progress.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.own_cassandra import own_cassandra  # noqa: E402
from gateway.intake import Intake, plan_work  # noqa: E402
from shared.batch_progress import batch_counts, batch_progress  # noqa: E402
from shared.jobs import BatchHeader, NewJob, utcnow  # noqa: E402
from shared.parts import PART_FILES, PartCount  # noqa: E402
from shared.store.cassandra_results import CassandraStore  # noqa: E402


def make_batch(store: CassandraStore, files: int) -> dict:
    """A batch of that many queued files, recorded as the gateway records it, with its parts
    counted as half done."""
    intake = Intake("digits", utcnow(), uuid.uuid4())
    for n in range(files):
        intake.accepted.append(
            NewJob(
                uuid.uuid4(),
                f"f{n:06d}.png",
                "ab" * 32,
                5000,
                "PNG",
                28,
                28,
                "digits",
                intake.created_at,
                intake.batch_id,
            )
        )
    _, parts = plan_work(intake, 64, intake.created_at)
    store.insert_batch(BatchHeader(intake.batch_id, "bench", "digits", intake.created_at, "bench"))
    for start in range(0, files, 2000):
        store.insert_jobs(intake.accepted[start : start + 2000])
    store.insert_jobs([], parts=parts)
    for part in parts:
        n = len(part.members)
        store.count_part(
            part.batch_id,
            part.part_id,
            PartCount(n, done=n // 2, first_finished=utcnow(), last_finished=utcnow()),
        )
    return store.get_batch(intake.batch_id)


def poll_ms(store: CassandraStore, header: dict, polls: int) -> float:
    times = []
    for _ in range(polls):
        started = time.perf_counter()
        batch_progress(header, batch_counts(store, header).values(), utcnow())
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings, stack = own_cassandra("bench-progress", 29142, 27100)
    results = []
    try:
        stack.start_cassandra()
        stack.create_schema()
        store = CassandraStore.open(settings)
        for files in args.files:
            header = make_batch(store, files)
            lines_header = {**header, "counted": None}  # as a batch made before parts is read
            for _ in range(2):  # warm both paths up first
                poll_ms(store, header, 1), poll_ms(store, lines_header, 1)
            parts_ms, lines_ms = [], []
            for _ in range(3):  # alternate, so drift on a shared machine hits both alike
                parts_ms.append(poll_ms(store, header, args.polls))
                lines_ms.append(poll_ms(store, lines_header, args.polls))
            results.append({"files": files, "parts_ms": min(parts_ms), "lines_ms": min(lines_ms)})
        store.close()
    finally:
        stack.down()
    print(f"{'files':>8s} {'parts (ms/poll)':>16s} {'lines (ms/poll)':>16s} {'lines / parts':>14s}")
    for r in results:
        print(
            f"{r['files']:8d} {r['parts_ms']:16.1f} {r['lines_ms']:16.1f}"
            f" {r['lines_ms'] / r['parts_ms']:13.1f}x"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"part_files": PART_FILES, "polls": args.polls, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
