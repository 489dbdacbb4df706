"""What a durable commit log costs: the service's own Cassandra writes with commitlog_sync
"periodic" (the package's default: fsync every 10 s, and a SIGKILL loses acknowledged writes)
beside "batch" (what devstack runs: a write is acknowledged once it is on disk). Same rows, same
run, own Cassandra restarted between the two, rounds alternated.

Three of the service's writes: a single upload's rows, one at a time (the gateway, per request);
a folder's rows 64 files a call (the gateway, per chunk); and finished jobs 64 a call (a worker,
per model batch). The bulk pipeline rate from bench/throughput.json is printed beside them, to
show whether the writes come near being what limits the service.

    .venv/bin/python bench/commitlog_sync.py --json bench/commitlog_sync.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.own_cassandra import own_cassandra  # noqa: E402
from bench.result_writes import outcomes  # noqa: E402
from shared.messaging import JobMessage, Work  # noqa: E402
from shared.settings import PROJECT_ROOT  # noqa: E402
from shared.store.cassandra_results import CassandraStore  # noqa: E402

MODES = ("periodic", "batch")


def single_uploads(store: CassandraStore, n: int) -> float:
    """Jobs/s recorded one request at a time, each waiting for its write: 1 / latency."""
    jobs, _ = outcomes(n, None)
    started = time.perf_counter()
    for job in jobs:
        message = JobMessage(job.job_id, job.sha256, job.filename, job.model_name, job.created_at)
        store.insert_jobs([job], [Work(job.job_id, (message,), False, job.created_at)])
    return n / (time.perf_counter() - started)


def folder_uploads(store: CassandraStore, n: int, chunk: int) -> float:
    """Jobs/s recorded a chunk at a time: one open work and its job rows and batch lines."""
    jobs, _ = outcomes(n, uuid.uuid4())
    started = time.perf_counter()
    for start in range(0, n, chunk):
        part = jobs[start : start + chunk]
        messages = tuple(JobMessage(j.job_id, j.sha256, j.filename, j.model_name, j.created_at) for j in part)
        store.insert_jobs(part, [Work(uuid.uuid4(), messages, True, part[0].created_at)])
    return n / (time.perf_counter() - started)


def finished_jobs(store: CassandraStore, n: int, chunk: int) -> float:
    """Jobs/s finished a model batch at a time, as a worker writes them."""
    jobs, done = outcomes(n, uuid.uuid4())
    store.insert_jobs(jobs)
    started = time.perf_counter()
    for start in range(0, n, chunk):
        store.finish(done[start : start + chunk])
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings, stack = own_cassandra("bench-commitlog", 29242, 27200)
    workloads = {
        "single upload rows": lambda store: single_uploads(store, args.singles),
        f"folder rows, {args.chunk} a call": lambda store: folder_uploads(store, args.jobs, args.chunk),
        f"finished jobs, {args.chunk} a call": lambda store: finished_jobs(store, args.jobs, args.chunk),
    }
    rates = {name: {mode: [] for mode in MODES} for name in workloads}
    try:
        for _ in range(args.rounds):  # alternate, so drift on a shared machine hits both alike
            for mode in MODES:
                stack.down()
                stack.start_cassandra(commitlog_sync=mode)
                stack.create_schema()
                store = CassandraStore.open(settings)
                for name, run in workloads.items():
                    run(store)  # warm-up: prepared statements, connections, JIT
                    rates[name][mode].append(run(store))
                store.close()
    finally:
        stack.down()
    throughput = PROJECT_ROOT / "bench" / "throughput.json"
    pipeline = None
    if throughput.exists():
        pipeline = json.loads(throughput.read_text())["bulk"]["images_per_second"]
    print(f"{'write':30s} {'periodic jobs/s':>16s} {'batch jobs/s':>13s} {'batch/periodic':>15s}")
    for name, by_mode in rates.items():
        periodic, batch = max(by_mode["periodic"]), max(by_mode["batch"])
        print(f"{name:30s} {periodic:16.0f} {batch:13.0f} {batch / periodic:14.2f}x")
    if pipeline:
        print(f"(the bulk pipeline, bench/throughput.json: {pipeline:.0f} images/s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "singles": args.singles,
                    "jobs": args.jobs,
                    "chunk": args.chunk,
                    "jobs_per_second": rates,
                    "bulk_pipeline_images_per_second": pipeline,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
