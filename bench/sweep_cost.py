"""What one sweep (workers/sweeper.py) costs: a fresh store's first, which finds a whole look-back
of empty minutes to settle, and one over a minute holding 10,000 bulk images' open work that is
not yet due to be sent again (sent 10 s before), as every sweep meets after a bulk upload until
that minute settles.

Starts Redis and Cassandra of `bench/throughput.py`'s stack, fresh, calls sweep() in this process
and prints, for each sweep, its wall time, this process's CPU and Cassandra's; --json FILE writes
them.

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
    call()
    after = process_cpu.snapshot(stack.run_dir)
    return {
        "wall_ms": round((time.perf_counter() - started) * 1000, 1),
        "sweeper_cpu_ms": round((time.process_time() - cpu) * 1000, 1),
        "cassandra_cpu_ms": round((after["cassandra"] - before["cassandra"]) * 1000, 1),
    }


def bulk_minute(store: CassandraStore, sent) -> None:
    """Open work as the gateway writes it for a 10,000-image folder, all sent at `sent`."""
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

        def one_sweep(now=None) -> None:
            sweep(
                store, lambda work: None, lambda chunk: 0, lease, settings.sweep_hours, now=now, ended=ended
            )

        results["first"] = timed(stack, one_sweep)
        sent = utcnow()
        bulk_minute(store, sent)
        later = sent + timedelta(seconds=10)
        results["bulk_minute_not_due"] = [timed(stack, lambda: one_sweep(later)) for _ in range(SWEEPS)]
        store.close()
    finally:
        stack.down()
    print(f"{'sweep':40s} {'wall ms':>8s} {'sweeper CPU ms':>15s} {'Cassandra CPU ms':>17s}")
    rows = [("a fresh store's first", results["first"])]
    rows += [
        (f"a minute of 10,048 images not due, {n + 1}", r)
        for n, r in enumerate(results["bulk_minute_not_due"])
    ]
    for name, r in rows:
        print(f"{name:40s} {r['wall_ms']:8.1f} {r['sweeper_cpu_ms']:15.1f} {r['cassandra_cpu_ms']:17.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
