"""What the worker's prefetch (RECOG_PREFETCH_MULTIPLIER) does for 32 clients, for bulk, and for a
worker added while a batch runs.

One stack (bench/throughput.py's, on its ports); for each multiplier the worker is started again
with it, then 32 clients post distinct single images with ?wait= for --seconds, then `recog
submit-folder` sends --images digits no run has sent. The multipliers run in turn, forward then
backward, --rounds times. Prints images/s, latencies and the mean batch the worker ran at 32
clients, bulk images/s, and the worker's CPU ms per image in each.

Then scaling out: one worker of one pool process takes a batch of --scale-out-images, and
SCALE_OUT_AFTER seconds after the upload began a second one starts. Prints how long the batch
took and the share of its images the second worker recognised, at 64, 16 and 1 messages a
process. --json FILE writes both tables.

    .venv/bin/python bench/prefetch.py --json bench/prefetch.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import date
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.flush_settings import cell, crowd, restart_worker, warmed_up  # noqa: E402
from bench.throughput import STATE, bench_stack, costed, make_unique_folder, measure_bulk  # noqa: E402

# Messages taken ahead per pool process (2 of them): 2 in all, 8, 32 (as many as the clients; the
# default since 2026-12-07, workers.default_prefetch), and 128 (the default before, max(4,
# RECOG_MAX_BATCH)).
MULTIPLIERS = (1, 4, 16, 64)
FIRST_BULK_UPLOAD = 2 * 10**9  # numbered apart from throughput.SENT's uploads and the warm-up's
SCALE_OUT_MULTIPLIERS = (64, 16, 1)
SCALE_OUT_AFTER = 5.0


def bulk_folder(blobs: list[bytes], count: int, first: int, name: str = "prefetch-bulk") -> Path:
    """count digits whose bytes no other run sends, so none is answered from the cache."""
    folder = STATE / name
    make_unique_folder(folder, blobs, count, first)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scale-out-images", type=int, default=3000)
    parser.add_argument("--scale-out-rounds", type=int, default=2)
    args = parser.parse_args()
    stack = bench_stack()
    rows, scale_out = [], []
    runs, stride = 0, max(args.images, args.scale_out_images)  # each run's uploads numbered apart
    try:
        url, blobs, key = warmed_up(stack, args.clients)
        for round_ in range(args.rounds):
            # Forward, then backward: no multiplier always runs first or last.
            for multiplier in MULTIPLIERS if round_ % 2 == 0 else MULTIPLIERS[::-1]:
                worker = restart_worker(stack, prefetch_multiplier=multiplier)
                print(f"round {round_ + 1}: prefetch multiplier {multiplier} ...", flush=True)
                settings = worker.settings
                concurrent = crowd(worker, url, blobs, args.clients, args.seconds, key)
                folder = bulk_folder(blobs, args.images, FIRST_BULK_UPLOAD + runs * stride)
                runs += 1
                bulk, bulk_cost = costed(
                    stack.run_dir, partial(measure_bulk, settings, folder, key), "images"
                )
                rows.append(
                    {
                        "round": round_ + 1,
                        "prefetch_multiplier": multiplier,
                        "messages_ahead": multiplier * settings.worker_concurrency,
                        "concurrent": concurrent,
                        "bulk": {**bulk, "cpu_ms_per_image": bulk_cost},
                    }
                )
        for round_ in range(args.scale_out_rounds):
            for multiplier in SCALE_OUT_MULTIPLIERS if round_ % 2 == 0 else SCALE_OUT_MULTIPLIERS[::-1]:
                print(f"round {round_ + 1}: scaling out, prefetch multiplier {multiplier} ...", flush=True)
                folder = bulk_folder(
                    blobs, args.scale_out_images, FIRST_BULK_UPLOAD + runs * stride, "prefetch-scale-out"
                )
                runs += 1
                scale_out.append({"round": round_ + 1, **measure_scale_out(stack, multiplier, folder, key)})
    finally:
        stack.down()
        if args.json:  # what was measured, even when a later run failed
            measured = {
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "date": date.today().isoformat(),
            }
            measured.update(single_worker=rows, scale_out=scale_out)
            args.json.write_text(json.dumps(measured, indent=2) + "\n")
    report(rows, scale_out)


def measure_scale_out(stack, multiplier: int, folder: Path, key: str) -> dict:
    """One worker of one process runs a batch; a second joins SCALE_OUT_AFTER s after the upload
    began. Both stopped again after."""
    stack.stop_workers()
    one = bench_stack(prefetch_multiplier=multiplier, worker_concurrency=1)
    one.start_worker("worker1", queues="both")
    one.wait_worker_ready("worker1")
    figures: dict = {}

    def upload() -> None:
        try:
            figures.update(measure_bulk(one.settings, folder, key))
        except Exception as exc:  # raised again below, in the benchmark's own thread
            figures["error"] = exc

    uploading = threading.Thread(target=upload, daemon=True)
    started = time.perf_counter()
    uploading.start()
    time.sleep(SCALE_OUT_AFTER)
    # No metrics server of its own: the first worker's port is taken.
    one.start_worker("worker2", settings=one.settings.replace(worker_metrics_port=0), queues="both")
    one.wait_worker_ready("worker2")
    second_ready = time.perf_counter() - started
    uploading.join()
    if "error" in figures:
        raise figures["error"]
    stack.stop("worker2")
    stack.stop("worker1")
    by_worker = workers_of(one, STATE / "bulk.csv")
    second = sum(n for name, n in by_worker.items() if name.startswith("worker2@"))
    return {
        "prefetch_multiplier": multiplier,
        **figures,
        "second_worker_ready_s": round(second_ready, 1),
        "second_worker_share": round(second / max(sum(by_worker.values()), 1), 3),
    }


def workers_of(stack, csv: Path) -> Counter:
    """How many of the CSV's jobs each worker recognised, from their rows in Cassandra."""
    from shared.store import open_store

    job_ids = [line.rsplit(",", 1)[1] for line in csv.read_text().splitlines()[1:]]
    store = open_store(stack.settings)
    try:
        return Counter((store.get_job(uuid.UUID(job_id)) or {}).get("worker") or "-" for job_id in job_ids)
    finally:
        store.close()


def report(rows: list[dict], scale_out: list[dict]) -> None:
    heads = ("multiplier", "ahead", "32c img/s", "p50 ms", "p99 ms", "batch", "worker")
    heads += ("bulk img/s", "worker")
    print("\n" + " ".join(f"{h:>10s}" for h in heads))
    for r in rows:
        concurrent, bulk = r["concurrent"], r["bulk"]
        cells = (
            r["prefetch_multiplier"],
            r["messages_ahead"],
            concurrent["images_per_second"],
            concurrent["p50_ms"],
            concurrent["p99_ms"],
            concurrent["mean_batch"],
            concurrent["cpu_ms_per_image"].get("worker", 0.0),
            bulk["images_per_second"],
            bulk["cpu_ms_per_image"].get("worker", 0.0),
        )
        print(" ".join(cell(c, 10) for c in cells))
    print("\n" + " ".join(f"{h:>10s}" for h in ("multiplier", "images", "seconds", "img/s", "2nd share")))
    for r in scale_out:
        cells = (
            r["prefetch_multiplier"],
            r["images"],
            r["seconds"],
            r["images_per_second"],
            r["second_worker_share"],
        )
        print(" ".join(cell(c, 10) for c in cells))


if __name__ == "__main__":
    main()
