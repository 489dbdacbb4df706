"""What one sweep (workers/sweeper.py) costs: a fresh store's first, which finds a whole look-back
of empty minutes to settle, and one over a minute holding 10,000 bulk images' open work that a live
worker holds (so none of it is due to be sent again), as every sweep meets while a bulk upload is
worked through.

Starts Redis and Cassandra of `bench/throughput.py`'s stack, fresh, calls sweep() in this process
and prints, for each sweep, its wall time, this process's CPU and Cassandra's, and how many open
work rows it read; --json FILE writes them.

    .venv/bin/python bench/sweep_cost.py --json bench/sweep_cost.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT_DIR))

from cassandra.concurrent import execute_concurrent_with_args  # noqa: E402

from bench import process_cpu, throughput  # noqa: E402
from shared.jobs import utcnow  # noqa: E402
from shared.messaging import JobMessage, Work  # noqa: E402
from shared.store import statements as cql  # noqa: E402
from shared.store.cassandra_results import CassandraStore  # noqa: E402
from workers.sweeper import sweep  # noqa: E402

CHUNKS = 157  # of 64 images: 10,048
SWEEPS = 5


def timed(stack, call) -> dict:
    before, started, cpu = process_cpu.snapshot(stack.run_dir), time.perf_counter(), time.process_time()
    report = call()
    after = process_cpu.snapshot(stack.run_dir)
    return {
        "wall_ms": round((time.perf_counter() - started) * 1000, 1),
        "sweeper_cpu_ms": round((time.process_time() - cpu) * 1000, 1),
        "cassandra_cpu_ms": round((after["cassandra"] - before["cassandra"]) * 1000, 1),
        "minutes_read": report.minutes_read,
        "rows_read": report.rows_read,
        "resent_work": report.resent_work,
    }


def bulk_minute(store: CassandraStore, sent) -> list[uuid.UUID]:
    """Open work as the gateway writes it for a 10,000-image folder, all sent at `sent`: its ids."""
    rows = []
    for n in range(CHUNKS):
        batch, part = uuid.uuid4(), uuid.uuid4()
        messages = tuple(
            JobMessage(uuid.uuid4(), "ab" * 32, f"{n}-{i}.png", "digits", sent, batch, part=part)
            for i in range(64)
        )
        rows.append(store._work_values(Work(uuid.uuid4(), messages, True, sent)))
    insert = store.session.prepare(cql.OPEN_WORK)
    for result in execute_concurrent_with_args(store.session, insert, rows, concurrency=32):
        assert result.success, result.result_or_exc
    return [row[1] for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    stack = throughput.bench_stack()
    stack.down()
    shutil.rmtree(throughput.STATE / "stack", ignore_errors=True)
    results: dict = {}
    try:
        stack.start_redis()
        stack.start_cassandra()
        stack.create_schema()
        store = CassandraStore.open(stack.settings)
        settings = stack.settings
        lease = timedelta(seconds=settings.lease_seconds)
        ended: dict = {}

        def one_sweep():
            return sweep(store, lambda work: None, lambda chunk: 0, lease, settings.sweep_hours, ended=ended)

        results["first"] = timed(stack, one_sweep)
        # Two minutes ago, so within what a sweep reads whatever the second now is, and held by a
        # live worker: read, none of it due.
        held = bulk_minute(store, utcnow() - timedelta(minutes=2))
        store.renew_lease("bench-worker", held, {}, 600)
        results["bulk_minute_held"] = [timed(stack, one_sweep) for _ in range(SWEEPS)]
        for sweep_figures in results["bulk_minute_held"]:
            assert sweep_figures["rows_read"] == CHUNKS and sweep_figures["resent_work"] == 0, sweep_figures
        store.close()
    finally:
        stack.down()
    print(
        f"{'sweep':40s} {'wall ms':>8s} {'sweeper CPU ms':>15s} {'Cassandra CPU ms':>17s} {'rows read':>10s}"
    )
    rows = [("a fresh store's first", results["first"])]
    rows += [
        (f"a minute of 10,048 images held, {n + 1}", r) for n, r in enumerate(results["bulk_minute_held"])
    ]
    for name, r in rows:
        print(
            f"{name:40s} {r['wall_ms']:8.1f} {r['sweeper_cpu_ms']:15.1f} {r['cassandra_cpu_ms']:17.1f}"
            f" {r['rows_read']:10d}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
