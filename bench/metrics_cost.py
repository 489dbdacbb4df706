"""What recog's Prometheus metrics cost an image: the updates the gateway and a worker's pool
process make for each image, timed on the real metric objects in prometheus-client's
multiprocess mode (each update a write to a memory-mapped file, as the services run them), beside
the CPU an image costs the gateway's or the worker's processes in bench/throughput.json's last
run; and reading one process's samples for a scrape, once per Prometheus scrape, not per image.

    .venv/bin/python bench/metrics_cost.py --json bench/metrics_cost.json
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

# Multiprocess mode must be chosen before prometheus_client is first imported.
FOLDER = tempfile.mkdtemp(prefix="recog-metrics-bench-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = FOLDER
atexit.register(shutil.rmtree, FOLDER, ignore_errors=True)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.metrics import JOBS_ACCEPTED  # noqa: E402
from shared.jobs import Outcome, utcnow  # noqa: E402
from shared.metrics import render  # noqa: E402
from workers.metrics import BATCH_SIZE, INFERENCE_SECONDS  # noqa: E402
from workers.pipeline import _count  # noqa: E402

THROUGHPUT = Path(__file__).with_name("throughput.json")
BULK_CHUNK = 64  # RECOG_CHUNK_SIZE: one model call's observations shared by its images
UPLOAD_FILES = 200  # `recog submit-folder --chunk`'s default: files per upload


def outcomes(n: int) -> list[Outcome]:
    created = utcnow()
    return [
        Outcome(
            uuid.uuid4(),
            "0" * 64,
            "f.png",
            "bench",
            created,
            label="3",
            model_name="digits",
            created_at=created,
        )
        for _ in range(n)
    ]


def best_us_per_image(update, images: int, rounds: int) -> float:
    """The fastest of the rounds, in microseconds an image: the machine's noise only adds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        update()
        times.append((time.perf_counter() - started) / images * 1e6)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    finished = outcomes(args.images)

    def gateway_single() -> None:
        for _ in range(args.images):
            JOBS_ACCEPTED.labels("single").inc()

    def worker_single() -> None:  # a gathered batch of one: its model call and its job
        for o in finished:
            BATCH_SIZE.observe(1)
            INFERENCE_SECONDS.observe(0.0004)
            _count([o])

    def worker_bulk() -> None:  # a chunk's model call, then its jobs counted together
        for start in range(0, args.images, BULK_CHUNK):
            BATCH_SIZE.observe(BULK_CHUNK)
            INFERENCE_SECONDS.observe(0.02)
            _count(finished[start : start + BULK_CHUNK])

    def gateway_bulk() -> None:  # one count per upload of `recog submit-folder`'s 200 files
        for _ in range(0, args.images, UPLOAD_FILES):
            JOBS_ACCEPTED.labels("batch").inc(UPLOAD_FILES)

    updates = {
        "single job: gateway": gateway_single,
        "single job: worker": worker_single,
        "bulk image: gateway": gateway_bulk,
        "bulk image: worker": worker_bulk,
    }
    results = {name: best_us_per_image(update, args.images, args.rounds) for name, update in updates.items()}
    scrapes = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        render()
        scrapes.append((time.perf_counter() - started) * 1000)

    cost = json.loads(THROUGHPUT.read_text())["cpu_ms_per_image"]
    phase = {"single job": "single", "bulk image": "bulk"}
    print(f"{'updates for one':22s} {'us':>6s} {'the process CPU an image (ms)':>31s} {'share':>7s}")
    table = {}
    for name, us in results.items():
        kind, process = name.split(": ")
        cpu_ms = cost[phase[kind]][process]
        table[name] = {"us": us, "process_cpu_ms_per_image": cpu_ms, "share": us / 1000 / cpu_ms}
        print(f"{name:22s} {us:6.2f} {cpu_ms:31.2f} {us / 10 / cpu_ms:6.2f}%")
    scrape = statistics.median(scrapes)
    print(f"reading this process's samples for a scrape: {scrape:.2f} ms (median of {args.rounds})")
    if args.json:
        record = {"images": args.images, "rounds": args.rounds, "updates": table, "scrape_ms": scrapes}
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
