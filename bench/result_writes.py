"""How to write finished jobs to Cassandra: one logged batch per job (the baseline), per-partition
unlogged batches plus single statements with the job rows last, one logged batch per 8 jobs (what
CassandraStore.finish does), or unlogged batches of 8 jobs' rows, their job rows after the rest
(tried on 2026-12-05 and left out: 13 % less of Cassandra's CPU by the medians, within the noise
of 3 rounds, and a worker killed between the two writes had its jobs recognised again, each with
a second audit row). Same rows, same run, own Cassandra; Cassandra's CPU per job read from /proc.

    .venv/bin/python bench/result_writes.py --json bench/result_writes.json
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

from bench import process_cpu  # noqa: E402
from bench.own_cassandra import own_cassandra  # noqa: E402
from shared.jobs import NewJob, Outcome, utcnow  # noqa: E402
from shared.store.cassandra_results import (  # noqa: E402
    JOBS_A_LOGGED_BATCH,
    CassandraStore,
    finish_groups,
    finish_statements,
)
from shared.store.statements import FINISH_BLANK, FINISH_FAILED, FINISH_LABELLED  # noqa: E402


def outcomes(n: int, batch_id: uuid.UUID) -> tuple[list[NewJob], list[Outcome]]:
    now = utcnow()
    jobs = [
        NewJob(
            uuid.uuid4(), f"f{i:05d}.png", uuid.uuid4().hex * 2, 5000, "PNG", 28, 28, "digits", now, batch_id
        )
        for i in range(n)
    ]
    done = [
        Outcome(
            j.job_id,
            j.sha256,
            j.filename,
            "bench",
            now,
            label=str(i % 10),
            confidence=0.99,
            probabilities=[0.001] * 9 + [0.991],
            model_name="digits",
            model_version="0" * 12,
            batch_id=batch_id,
        )
        for i, j in enumerate(jobs)
    ]
    return jobs, done


def logged_per_job(store: CassandraStore, done: list[Outcome], chunk: int) -> None:
    """The baseline, as the service did it until 2026-12-05: every job's rows in one logged batch."""
    for start in range(0, len(done), chunk):
        futures = []
        for o in done[start : start + chunk]:
            futures.append(store.session.execute_async(store.cql_batch(finish_statements(o))))
        for future in futures:
            future.result()


def grouped(store: CassandraStore, done: list[Outcome], chunk: int) -> None:
    """The alternative: audit rows and batch lines in one unlogged batch per partition, cache rows
    one by one (CassandraStore._write does the grouping), then the job rows, the marker a
    redelivered task checks, last."""
    for start in range(0, len(done), chunk):
        singles, partitioned, job_rows = [], [], []
        for o in done[start : start + chunk]:
            # A batch job, not cached, no open-job row: exactly these four writes.
            job_row, audit, line, remember = finish_statements(o)
            job_rows.append(job_row)
            partitioned += [(("audit", audit[1][0]), audit), (("batch", o.batch_id), line)]
            singles.append(remember)
        store._write(singles, partitioned)
        store._write(job_rows, [])


def logged_groups(store: CassandraStore, done: list[Outcome], chunk: int) -> None:
    """What CassandraStore.finish does: a logged batch per JOBS_A_LOGGED_BATCH jobs."""
    for start in range(0, len(done), chunk):
        store.finish(done[start : start + chunk])


JOB_ROWS = {FINISH_LABELLED, FINISH_BLANK, FINISH_FAILED}


def unlogged_job_rows_last(store: CassandraStore, done: list[Outcome], chunk: int) -> None:
    """No batch log: per group, an unlogged batch of the audit rows, batch lines and cache rows,
    then one of the job rows, the mark a redelivered task checks."""
    for start in range(0, len(done), chunk):
        groups = [
            [s for o in g for s in finish_statements(o)] for g in finish_groups(done[start : start + chunk])
        ]
        for phase in (lambda s: s[0] not in JOB_ROWS, lambda s: s[0] in JOB_ROWS):
            futures = [
                store.session.execute_async(store.cql_batch([s for s in g if phase(s)], BatchType.UNLOGGED))
                for g in groups
            ]
            for future in futures:
                future.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings, stack = own_cassandra("bench-writes", 29142, 27100)
    rates: dict[str, list[float]] = {
        "logged batch per job": [],
        "unlogged per partition": [],
        f"logged batch per {JOBS_A_LOGGED_BATCH} jobs": [],
        f"unlogged per {JOBS_A_LOGGED_BATCH} jobs, job rows last": [],
    }
    # CPU ms per job: Cassandra's (read from /proc) and this process's (the driver's work).
    cpu: dict[str, dict[str, list[float]]] = {name: {"cassandra": [], "client": []} for name in rates}
    try:
        stack.start_cassandra()
        stack.create_schema()
        store = CassandraStore.open(settings)
        for _ in range(args.rounds):  # alternate, so drift on a shared machine hits both alike
            for name, write in (
                ("logged batch per job", logged_per_job),
                ("unlogged per partition", grouped),
                (f"logged batch per {JOBS_A_LOGGED_BATCH} jobs", logged_groups),
                (f"unlogged per {JOBS_A_LOGGED_BATCH} jobs, job rows last", unlogged_job_rows_last),
            ):
                jobs, done = outcomes(args.jobs, uuid.uuid4())
                store.insert_jobs(jobs)
                before = process_cpu.snapshot(stack.run_dir)
                started = time.perf_counter()
                write(store, done, args.chunk)
                rates[name].append(args.jobs / (time.perf_counter() - started))
                cost = process_cpu.cost_per_image(before, process_cpu.snapshot(stack.run_dir), args.jobs)
                for part in ("cassandra", "client"):
                    cpu[name][part].append(cost.get(part, 0.0))
        store.close()
    finally:
        stack.down()
    best = {name: max(values) for name, values in rates.items()}
    base = best["logged batch per job"]
    print(
        f"{'strategy':34s} {f'jobs/s (best of {args.rounds})':>20s} {'x baseline':>11s}"
        f" {'Cassandra CPU ms/job':>21s} {'client CPU ms/job':>18s}"
    )
    for name, rate in best.items():
        cass, client = (statistics.median(cpu[name][part]) for part in ("cassandra", "client"))
        print(f"{name:34s} {rate:20.0f} {rate / base:10.2f}x {cass:21.3f} {client:18.3f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"jobs": args.jobs, "chunk": args.chunk, "jobs_per_second": rates, "cpu_ms_per_job": cpu},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
