"""What the JVM's garbage collector costs Cassandra: the service's own writes (a folder's rows 64
files a call, then their finished jobs 64 a call) on a Cassandra of the benchmark's own, started
afresh for each collector in turn, rounds alternated. Cassandra's CPU per job read from /proc.

G1 is Java 17's default; Parallel is what devstack/cassandra.py starts (the closest Java 17 has to
the ParNew collector Cassandra 2.1 was tuned for); Serial is the single-threaded one.

    .venv/bin/python bench/cassandra_gc.py --json bench/cassandra_gc.json
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
from devstack import cassandra  # noqa: E402
from shared.store.cassandra_results import CassandraStore  # noqa: E402

COLLECTORS = {
    "G1 (Java's default)": "-XX:+UseG1GC",
    "Parallel (devstack)": "-XX:+UseParallelGC",
    "Serial": "-XX:+UseSerialGC",
}
WARM_UP_ROUNDS = 2  # the JIT compiles Cassandra's write path during the first few thousand jobs


def with_collector(flag: str):
    """devstack's command with its collector flag swapped for flag."""
    started_with = cassandra.command

    def command(*args, **kwargs) -> list[str]:
        argv = [
            a for a in started_with(*args, **kwargs) if not (a.startswith("-XX:+Use") and a.endswith("GC"))
        ]
        return [argv[0], flag, *argv[1:]]

    return command


def write_jobs(store: CassandraStore, jobs: int, chunk: int) -> None:
    new, done = outcomes(jobs, uuid.uuid4())
    for start in range(0, jobs, chunk):
        store.insert_jobs(new[start : start + chunk])
    for start in range(0, jobs, chunk):
        store.finish(done[start : start + chunk])


def measure(flag: str, jobs: int, chunk: int, samples: int) -> tuple[list[float], list[float]]:
    """Cassandra's CPU ms per job, and jobs a second, for each sample after the warm-up."""
    settings, stack = own_cassandra("bench-gc", 29242, 27200)
    started_with = cassandra.command
    cassandra.command = with_collector(flag)
    try:
        stack.start_cassandra()
        stack.create_schema()
        store = CassandraStore.open(settings)
        for _ in range(WARM_UP_ROUNDS):
            write_jobs(store, jobs, chunk)
        cpu, rates = [], []
        for _ in range(samples):
            before, started = process_cpu.snapshot(stack.run_dir), time.perf_counter()
            write_jobs(store, jobs, chunk)
            rates.append(jobs / (time.perf_counter() - started))
            cpu.append(
                process_cpu.cost_per_image(before, process_cpu.snapshot(stack.run_dir), jobs)["cassandra"]
            )
        store.close()
        return cpu, rates
    finally:
        cassandra.command = started_with
        stack.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=3, help="measured runs of --jobs per start")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {name: [] for name in COLLECTORS}
    rates: dict[str, list[float]] = {name: [] for name in COLLECTORS}
    for _ in range(args.rounds):  # alternated, so drift on a shared machine hits each alike
        for name, flag in COLLECTORS.items():
            spent, rate = measure(flag, args.jobs, args.chunk, args.samples)
            cpu[name] += spent
            rates[name] += rate
            print(f"{name:22s} Cassandra CPU ms a job {spent}", flush=True)
    base = statistics.median(cpu["G1 (Java's default)"])
    print(f"\n{'collector':22s} {'CPU ms a job (median)':>22s} {'vs G1':>7s} {'jobs/s (median)':>16s}")
    for name in COLLECTORS:
        median = statistics.median(cpu[name])
        print(f"{name:22s} {median:22.3f} {median / base:7.2f} {statistics.median(rates[name]):16.0f}")
    if args.json:
        result = {
            "jobs": args.jobs,
            "chunk": args.chunk,
            "cassandra_cpu_ms_per_job": cpu,
            "jobs_per_second": rates,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
