"""A worker reads the statuses of a gathered batch's jobs before recognising them: one request per
job, all at once (the baseline, the service's way until 2026-12-06), or one request asking for
them all (`WHERE job_id IN ?`, CassandraStore.look_up; a lone job's is read on its own either
way). Same jobs, same run, own Cassandra (one node), the two ways alternated; Cassandra's CPU per
status read from /proc, the client's (the driver's work, which a worker's pool process pays) from
this process.

    .venv/bin/python bench/status_reads.py --json bench/status_reads.json
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

from bench import process_cpu  # noqa: E402
from bench.own_cassandra import own_cassandra  # noqa: E402
from bench.result_writes import outcomes  # noqa: E402
from shared.store import statements as cql  # noqa: E402
from shared.store.cassandra_results import CassandraStore  # noqa: E402


def one_a_request(store: CassandraStore, ids: list[uuid.UUID]) -> dict:
    futures = [store._cql.run_async(cql.SELECT_STATUS, (job_id,)) for job_id in ids]
    return {row["job_id"]: row["status"] for future in futures for row in future.result()}


def all_in_one(store: CassandraStore, ids: list[uuid.UUID]) -> dict:
    return store.look_up(ids, [])[0]


WAYS = {"one request a job (baseline)": one_a_request, "one request for all (IN)": all_in_one}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs", type=int, default=4000, help="jobs whose statuses are read, per way and size"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64], help="jobs per gathered batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings, stack = own_cassandra("bench-status-reads", 29162, 27120)
    # Per batch size and way: reads a second, and CPU ms per status read (Cassandra's, client's).
    results: dict = {
        str(size): {way: {"reads_per_second": [], "cassandra": [], "client": []} for way in WAYS}
        for size in args.sizes
    }
    try:
        stack.start_cassandra()
        stack.create_schema()
        store = CassandraStore.open(settings)
        jobs, _ = outcomes(args.jobs, uuid.uuid4())
        store.insert_jobs(jobs)
        ids = [job.job_id for job in jobs]
        for way in WAYS.values():  # a first pass each, unmeasured: the statements prepared, the JIT warmed
            for start in range(0, len(ids), 16):
                assert len(way(store, ids[start : start + 16])) == len(ids[start : start + 16])
        for _ in range(args.rounds):
            for size in args.sizes:
                for name, way in WAYS.items():
                    before = process_cpu.snapshot(stack.run_dir)
                    started = time.perf_counter()
                    found = 0
                    for start in range(0, len(ids), size):
                        found += len(way(store, ids[start : start + size]))
                    elapsed = time.perf_counter() - started
                    assert found == len(ids), f"{name} found {found} of {len(ids)} jobs"
                    cost = process_cpu.cost_per_image(before, process_cpu.snapshot(stack.run_dir), len(ids))
                    entry = results[str(size)][name]
                    entry["reads_per_second"].append(len(ids) / elapsed)
                    entry["cassandra"].append(cost.get("cassandra", 0.0))
                    entry["client"].append(cost.get("client", 0.0))
        store.close()
    finally:
        stack.down()
    print(
        f"{'jobs a batch':>12s} {'way':30s} {'reads/s':>9s} {'Cassandra CPU ms/read':>22s}"
        f" {'client CPU ms/read':>19s}   (medians of {args.rounds} rounds)"
    )
    for size, ways in results.items():
        for name, entry in ways.items():
            rate, cass, client = (
                statistics.median(entry[k]) for k in ("reads_per_second", "cassandra", "client")
            )
            print(f"{size:>12s} {name:30s} {rate:9.0f} {cass:22.3f} {client:19.3f}")
    if args.json:
        args.json.write_text(
            json.dumps({"jobs": args.jobs, "rounds": args.rounds, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
