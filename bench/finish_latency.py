"""How long a waited-for single job's final write keeps its answer waiting, one job at a time with
idle gaps, as one client's jobs come: the logged batch CassandraStore.finish sends (the job's row
with its upload columns, its audit row and its cache row, all or nothing), the same statements as
an unlogged batch or sent concurrently (neither all or nothing: a worker or Cassandra dying
between them can leave a done job with no audit row), and the job row alone (its result's and
upload's columns, one partition), the floor of any write that records the result. Same rows, own
Cassandra (one node, `commitlog_sync: batch` as the service runs it), the ways alternated job by
job.

    .venv/bin/python bench/finish_latency.py --json bench/finish_latency.json
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

from cassandra.query import BatchType  # noqa: E402

from bench.own_cassandra import own_cassandra  # noqa: E402
from shared.jobs import Outcome, utcnow  # noqa: E402
from shared.store import statements as cql  # noqa: E402
from shared.store.cassandra_results import CassandraStore, finish_statements  # noqa: E402

JOB_ROW = {cql.FINISH_LABELLED, cql.RECORD_UPLOAD_STARTED}
GAP_SECONDS = 0.015  # between jobs: one client's next request, as Cassandra sees it


def waited_job() -> Outcome:
    """A finished job whose gateway left its whole row to the worker (POST /v1/jobs?wait=)."""
    now = utcnow()
    return Outcome(
        uuid.uuid4(),
        uuid.uuid4().hex * 2,
        "digit.png",
        "bench",
        now,
        label="7",
        confidence=0.99,
        probabilities=[0.001] * 9 + [0.991],
        model_name="digits",
        model_version="0" * 12,
        created_at=now,
        tenant="bench",
        upload={
            "size_bytes": 5000,
            "image_format": "PNG",
            "width": 260,
            "height": 260,
            "model_name": "digits",
            "started_at": now,
        },
    )


def logged(store: CassandraStore, o: Outcome) -> None:
    store.finish([o])


def unlogged(store: CassandraStore, o: Outcome) -> None:
    store.session.execute(store.cql_batch(finish_statements(o), BatchType.UNLOGGED))


def concurrently(store: CassandraStore, o: Outcome) -> None:
    futures = [store._cql.run_async(text, values) for text, values in finish_statements(o)]
    for future in futures:
        future.result()


def job_row_alone(store: CassandraStore, o: Outcome) -> None:
    """The result's and the upload's columns of the job row: one partition, one mutation."""
    job_row = [(text, values) for text, values in finish_statements(o) if text in JOB_ROW]
    assert len(job_row) == 2, job_row
    store.session.execute(store.cql_batch(job_row, BatchType.UNLOGGED))


WAYS = {
    "logged batch (today)": logged,
    "unlogged batch": unlogged,
    "statements concurrently": concurrently,
    "job row alone (floor)": job_row_alone,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400, help="jobs written each way")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings, stack = own_cassandra("bench-finish-latency", 29172, 27130)
    latencies: dict[str, list[float]] = {name: [] for name in WAYS}
    try:
        stack.start_cassandra()
        stack.create_schema()
        store = CassandraStore.open(settings)
        for way in WAYS.values():  # unmeasured: the statements prepared, the JIT warmed
            for _ in range(50):
                way(store, waited_job())
        for _ in range(args.jobs):
            for name, way in WAYS.items():
                job = waited_job()
                time.sleep(GAP_SECONDS)
                started = time.perf_counter()
                way(store, job)
                latencies[name].append((time.perf_counter() - started) * 1000)
        store.close()
    finally:
        stack.down()
    floor = statistics.median(latencies["job row alone (floor)"])
    print(f"{'way':26s} {'p50 ms':>7s} {'p90 ms':>7s} {'p50 over the floor':>19s}   ({args.jobs} jobs a way)")
    summary = {}
    for name, values in latencies.items():
        values.sort()
        p50, p90 = statistics.median(values), values[int(len(values) * 0.9)]
        summary[name] = {"p50_ms": p50, "p90_ms": p90}
        print(f"{name:26s} {p50:7.2f} {p90:7.2f} {p50 - floor:19.2f}")
    if args.json:
        record = {"jobs": args.jobs, "gap_seconds": GAP_SECONDS, "ways": summary}
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
