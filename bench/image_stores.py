"""What keeping uploads in Cassandra costs: RECOG_IMAGE_STORE=volume (the baseline) against
cassandra, on the same private stack, in alternating rounds.

Each round starts a fresh stack with one backend and measures a folder through
`recog submit-folder` (bulk) and one client posting single images with ?wait= (latency).
The model alone in-process is measured once, so each rate is also a share of that limit.

    .venv/bin/python bench/image_stores.py --json bench/image_stores.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput import (  # noqa: E402
    STATE,
    bench_stack,
    drive,
    make_folder,
    measure_bulk,
    measure_limit,
    start_fresh,
)
from shared.settings import IMAGE_STORES, PROJECT_ROOT  # noqa: E402
from tests import images  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="of the one-client latency run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    folder = STATE / f"folder-{args.images}"
    make_folder(folder, args.images, PROJECT_ROOT / ".recog" / "cache" / "training")
    blobs = [images.png_digit(d, i) for d in range(10) for i in range(10)]
    limit = measure_limit(bench_stack().settings)[0]["images_per_second"]
    runs: dict[str, list[dict]] = {store: [] for store in IMAGE_STORES}
    for n in range(args.rounds):  # alternate, so drift on a shared machine hits both alike
        for store in IMAGE_STORES:
            print(f"round {n + 1}: {store} ...", flush=True)
            stack = bench_stack(image_store=store)
            try:
                start_fresh(stack)
                key = stack.local_key()
                bulk = measure_bulk(stack.settings, folder, key)
                url = f"{stack.settings.gateway_url}/v1/jobs"
                single = drive(url, "file", blobs, 1, args.seconds, {"wait": 10}, key)
            finally:
                stack.down()
            runs[store].append({"bulk": bulk, "single": single})
    report(runs, limit)
    if args.json:
        summary = {"machine": platform.platform(), "limit_images_per_second": limit, "runs": runs}
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


def report(runs: dict[str, list[dict]], limit: float) -> None:
    def median(store: str, part: str, key: str) -> float:
        return statistics.median(r[part][key] for r in runs[store])

    base = median("volume", "bulk", "images_per_second")
    print(
        f"\n{'image store':12s} {'bulk img/s':>11s} {'% limit':>8s} {'x volume':>9s}"
        f" {'p50 ms':>7s} {'p95 ms':>7s}"
    )
    for store in runs:
        rate = median(store, "bulk", "images_per_second")
        p50, p95 = median(store, "single", "p50_ms"), median(store, "single", "p95_ms")
        print(
            f"{store:12s} {rate:11.1f} {100 * rate / limit:7.1f}% {rate / base:8.2f}x {p50:7.1f} {p95:7.1f}"
        )
    print(f"(medians of {len(runs['volume'])} rounds; the model alone: {limit:.0f} images/s)")


if __name__ == "__main__":
    main()
