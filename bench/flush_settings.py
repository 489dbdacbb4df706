"""What celery-batches' flush settings do for 32 clients posting single images with ?wait=.

One stack (bench/throughput.py's, on its ports); for each setting the worker is started again with
RECOG_MAX_BATCH and RECOG_MAX_WAIT_MS set, then 32 clients post distinct images for --seconds.
The settings run in turn, forward then backward, --rounds times; every image sent is new
bytes (bench/throughput.SENT), so none is answered from the cache. Prints images/s, latencies,
the mean batch the worker ran (its recog_batch_size histogram) and the worker's CPU ms per
image; --json FILE writes them.

    .venv/bin/python bench/flush_settings.py --json bench/flush_settings.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput import bench_stack, costed, drive, start_fresh  # noqa: E402
from devstack.stack import LocalStack  # noqa: E402
from tests import images  # noqa: E402

# (max batch, max wait ms): no batching, then the default (no wait while a process is free), then
# windows held even with a process free.
SETTINGS = [(1, 0), (64, 0), (64, 2), (64, 10)]
WARM_UP_SECONDS = 20  # a fresh Cassandra and gateway are slower at first: not counted


def batches(metrics_url: str) -> tuple[float, float]:
    """The worker's recog_batch_size histogram so far: (images, model calls)."""
    values = {"recog_batch_size_sum": 0.0, "recog_batch_size_count": 0.0}
    for family in text_string_to_metric_families(requests.get(metrics_url, timeout=10).text):
        for sample in family.samples:  # one per pool process and model
            if sample.name in values:
                values[sample.name] += sample.value
    return values["recog_batch_size_sum"], values["recog_batch_size_count"]


def warmed_up(stack: LocalStack, clients: int) -> tuple[str, list[bytes], str]:
    """The stack started fresh and given WARM_UP_SECONDS of clients: the jobs URL, the images the
    clients post, the API key."""
    start_fresh(stack)
    key = stack.local_key()
    url = f"{stack.settings.gateway_url}/v1/jobs"
    blobs = [images.png_digit(d, i) for d in range(10) for i in range(10)]
    drive(url, "file", blobs, clients, WARM_UP_SECONDS, {"wait": 30}, key)
    return url, blobs, key


def restart_worker(stack: LocalStack, **overrides) -> LocalStack:
    """The stack's workers started again with those settings (Settings fields): its stack."""
    stack.stop_workers()
    worker = bench_stack(**overrides)
    worker.start_workers()
    worker.wait_workers_ready()
    return worker


def crowd(worker: LocalStack, url: str, blobs: list[bytes], clients: int, seconds: float, key: str) -> dict:
    """clients posting distinct single images with ?wait= for seconds: their figures, the mean batch
    the worker ran them in and each process's CPU ms an image."""
    settings = worker.settings
    metrics = f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics"
    images_before, calls_before = batches(metrics)
    figures, cost = costed(
        worker.run_dir, lambda: drive(url, "file", blobs, clients, seconds, {"wait": 30}, key)
    )
    images_after, calls_after = batches(metrics)
    calls = calls_after - calls_before
    return {
        **figures,
        # None where the histogram could not be read whole (a pool process not counted yet).
        "mean_batch": round((images_after - images_before) / calls, 2) if calls > 0 else None,
        "cpu_ms_per_image": cost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    stack = bench_stack()
    rows = []
    try:
        url, blobs, key = warmed_up(stack, args.clients)
        for round_ in range(args.rounds):
            # Forward, then backward: no setting always runs first or last.
            for max_batch, max_wait_ms in SETTINGS if round_ % 2 == 0 else SETTINGS[::-1]:
                worker = restart_worker(stack, max_batch=max_batch, max_wait_ms=max_wait_ms)
                print(f"round {round_ + 1}: max batch {max_batch}, max wait {max_wait_ms} ms ...", flush=True)
                figures = crowd(worker, url, blobs, args.clients, args.seconds, key)
                rows.append(
                    {"round": round_ + 1, "max_batch": max_batch, "max_wait_ms": max_wait_ms, **figures}
                )
    finally:
        stack.down()
    heads = ("max batch", "wait ms", "img/s", "p50 ms", "p99 ms", "batch", "worker", "all CPU")
    print("\n" + " ".join(f"{h:>9s}" for h in heads))
    for r in rows:
        cost = r["cpu_ms_per_image"]
        cells = (
            r["max_batch"],
            r["max_wait_ms"],
            r["images_per_second"],
            r["p50_ms"],
            r["p99_ms"],
            r["mean_batch"],
            cost.get("worker", 0.0),
            cost.get("total", 0.0),
        )
        print(" ".join(cell(c) for c in cells))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


def cell(value, width: int = 9) -> str:
    """A table cell: a float with 2 decimals, an int, or '-' for None, right-aligned."""
    if value is None:
        return "-".rjust(width)
    return f"{value:{width}.2f}" if isinstance(value, float) else f"{value:{width}d}"


if __name__ == "__main__":
    main()
