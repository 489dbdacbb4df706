"""Single-image latency beside a running batch, with the priority design and without.

On bench/throughput.py's stack, two arrangements in turn (--rounds times each):

- split, the design (docs/architecture.md#priority): worker1 takes single images, worker-bulk
  the chunks at nice 10;
- both, the baseline: one worker takes both queues, as recog ran before.

For each: --samples single jobs one after another with ?wait=, first on the idle stack, then
beside a batch of --batch images (one zip); every image is new bytes, so none is answered from the
cache. Prints p50 and p99 idle and beside the batch, their ratio, and the images/s the batch made
meanwhile; --json FILE writes them.

    .venv/bin/python bench/priority.py --json bench/priority.json
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
import zipfile
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput import bench_stack, start_fresh  # noqa: E402
from devstack.stack import BULK_WORKER, SINGLES_WORKER, LocalStack  # noqa: E402
from tests import images  # noqa: E402


def p99(ms: list[float]) -> float:
    return sorted(ms)[math.ceil(0.99 * len(ms)) - 1]


def p50(ms: list[float]) -> float:
    return sorted(ms)[len(ms) // 2]


def singles(url: str, key: str, count: int) -> list[float]:
    """Milliseconds of each of count single jobs waited for, one after another."""
    uploads = [images.fresh_png_digit(i % 10, i % 7) for i in range(count)]
    took = []
    for data in uploads:
        started = time.perf_counter()
        answer = requests.post(
            f"{url}/v1/jobs",
            params={"wait": 30},
            files={"file": ("single.png", data)},
            headers={"Authorization": f"Bearer {key}", "Connection": "close"},
            timeout=60,
        )
        took.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    return took


def batch_done(url: str, key: str, batch_id: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return requests.get(f"{url}/v1/batches/{batch_id}", headers=headers, timeout=30).json()["done"]


def measure(stack: LocalStack, key: str, samples: int, batch: int) -> dict:
    url = stack.settings.gateway_url
    singles(url, key, 300)  # warm: a fresh stack's first minutes are slower
    idle = singles(url, key, samples)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(batch):
            archive.writestr(f"load/{i:05d}.png", images.fresh_png_digit(i % 10, i % 10))
    headers = {"Authorization": f"Bearer {key}"}
    posted = requests.post(
        f"{url}/v1/batches", files={"archive": ("load.zip", buffer.getvalue())}, headers=headers, timeout=600
    )
    batch_id = posted.json()["id"]
    before, started = batch_done(url, key, batch_id), time.perf_counter()
    loaded = singles(url, key, samples)
    made = (batch_done(url, key, batch_id) - before) / (time.perf_counter() - started)
    requests.post(f"{url}/v1/batches/{batch_id}/cancel", headers=headers, timeout=30)
    return {
        "idle_p50_ms": round(p50(idle), 1),
        "idle_p99_ms": round(p99(idle), 1),
        "loaded_p50_ms": round(p50(loaded), 1),
        "loaded_p99_ms": round(p99(loaded), 1),
        "p99_ratio": round(p99(loaded) / p99(idle), 2),
        "batch_images_per_second": round(made, 1),
    }


def arrange(stack: LocalStack, split: bool) -> None:
    stack.stop_workers()
    if split:
        stack.start_workers()
        stack.wait_workers_ready()
    else:
        stack.start_worker(SINGLES_WORKER, queues="both")
        stack.wait_worker_ready(SINGLES_WORKER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    stack = bench_stack()
    start_fresh(stack)
    key = stack.local_key()
    runs: dict[str, list[dict]] = {"split": [], "both": []}
    try:
        for _ in range(args.rounds):
            for name in runs:
                arrange(stack, split=name == "split")
                print(f"{name} ...", flush=True)
                runs[name].append(measure(stack, key, args.samples, args.batch))
    finally:
        stack.down()
    print(
        f"\n{'workers':<40} {'idle p50':>9} {'idle p99':>9} {'batch p50':>10} {'batch p99':>10} "
        f"{'ratio':>6} {'batch/s':>8}"
    )
    labels = {"split": f"{SINGLES_WORKER} + {BULK_WORKER} (nice 10)", "both": "one worker, both queues"}
    for name, rows in runs.items():
        for r in rows:
            print(
                f"{labels[name]:<40} {r['idle_p50_ms']:>9} {r['idle_p99_ms']:>9} {r['loaded_p50_ms']:>10} "
                f"{r['loaded_p99_ms']:>10} {r['p99_ratio']:>6} {r['batch_images_per_second']:>8}"
            )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    main()
