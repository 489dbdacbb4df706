"""Throughput and latency of recog on its own private local stack, beside its limits and the seeds' way.

In one run: (1) the model alone in-process at its best batch size (the limit), and `recog classify`'s
way (decode, preprocess, model) on the same images; (2) after a warm-up folder of 2,000 other images
(a fresh stack's first seconds cost more: Cassandra's JIT compiling, first connections; "warmup"
has that cold figure), a 10,000-image folder through `recog submit-folder` until every result is in Cassandra;
(3) one client posting single images with ?wait=; (4) 32 clients for 30 s with dynamic batching
on, then with max batch 1; (5) the seed-style baseline (bench/seed_app.py: model.predict() per
request) driven like (4), after a warm-up of its own.
Prints a table, and the CPU milliseconds each process (gateway, worker, Cassandra, Redis, the
client) spent per image in each phase, read from /proc (bench/process_cpu.py); --json FILE writes
every figure.

    .venv/bin/python bench/throughput.py --json bench/throughput.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from itertools import zip_longest
from pathlib import Path

import numpy as np
import requests

ROOT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT_DIR))

from bench import process_cpu  # noqa: E402
from bench.profiles import PROFILED, Profiles, top_functions  # noqa: E402
from devstack import processes  # noqa: E402
from devstack.stack import LocalStack  # noqa: E402
from shared.settings import PROJECT_ROOT, Settings  # noqa: E402
from tests import images  # noqa: E402

STATE = PROJECT_ROOT / ".recog" / "bench"
PORTS = {"redis": 26379, "cassandra": 29042, "storage": 27000, "gateway": 28000, "seed": 28100}
KINDS = {
    "paper": lambda d, i: images.encode(images.ink_on_paper(d, i)),
    "photo": lambda d, i: images.encode(images.grey_photo(d, i), "JPEG", quality=85),
    "canvas": lambda d, i: images.encode(images.canvas_drawing(d, i)),
    "marker": lambda d, i: images.encode(images.thick_marker(d, i)),
    "palette": images.palette_png,
}


def percentiles(ms: list[float]) -> dict:
    if not ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1), "p99_ms": round(float(p99), 1)}


def unique(png: bytes, n: int) -> bytes:
    """The same picture with a distinct text chunk: new bytes (no cache hit), same pixels."""
    data = b"bench\0" + str(n).encode()
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return png[:-12] + chunk + png[-12:]


def heldout_digits(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    from model import mnist_data

    digits, labels = mnist_data.load(cache)
    _, held = mnist_data.split(len(digits))
    return digits[held], labels[held]


CLASSIFY_FILES = 10_000


def measure_limit(settings: Settings) -> dict:
    from model.preprocess import to_mnist
    from model.recogniser import Recogniser, configure_threads
    from shared.decode import open_image

    configure_threads(2)
    recogniser = Recogniser(settings.models_dir, settings.model)
    blobs = [images.png_digit(d, i) for d in range(10) for i in range(10)]
    arrays = np.stack([to_mnist(open_image(b, settings.max_image_pixels)) for b in blobs] * 41)[
        :4096, ..., None
    ]
    # The limit is the faster of the two ways to call the model, at its best batch, both on 2
    # threads: the workers' (TensorFlow Lite) and the traced Keras call they used before.
    by_call = {
        "lite": _rates(recogniser.predict_arrays, arrays),
        "keras": _rates(_traced_keras(recogniser), arrays),
    }
    call, best = max(by_call.items(), key=lambda item: max(item[1].values()))
    size = max(best, key=best.get)
    limit = {
        "images_per_second": round(best[size], 1),
        "batch_size": size,
        "by_batch_size": {k: round(v, 1) for k, v in best.items()},
        "call": call,
        "by_call": {name: round(max(rates.values()), 1) for name, rates in by_call.items()},
    }
    # What `recog classify` does (model/local_files.py): read and prepare the files in a pool of
    # processes, one model call per 256, on 10,000 files (its pool takes about a second to start).
    from model.local_files import recognise_files

    folder = STATE / "classify"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    files = []
    for n in range(CLASSIFY_FILES):
        files.append(folder / f"{n:05d}.png")
        files[-1].write_bytes(blobs[n % len(blobs)])
    try:
        started = time.perf_counter()
        done = sum(1 for _ in recognise_files(recogniser, files, settings.max_image_pixels))
        rate = done / (time.perf_counter() - started)
    finally:
        shutil.rmtree(folder)
    return limit, {"images_per_second": round(rate, 1), "share_of_limit": round(rate / best[size], 4)}


def _rates(predict, arrays: np.ndarray) -> dict[int, float]:
    """Images a second through predict at each batch size."""
    rates = {}
    for size in (32, 64, 128, 256, 512):
        predict(arrays[:size])
        started = time.perf_counter()
        for start in range(0, len(arrays), size):
            predict(arrays[start : start + size])
        rates[size] = len(arrays) / (time.perf_counter() - started)
    return rates


def _traced_keras(recogniser):
    from model.recogniser import keras_model, traced_call

    return traced_call(keras_model(recogniser.info.weights))


def make_folder(folder: Path, count: int, cache: Path) -> None:
    marker = folder / ".complete"
    if marker.exists() and marker.read_text() == str(count):
        return
    shutil.rmtree(folder, ignore_errors=True)
    images.use_digits(*heldout_digits(cache))
    _, labels = images.heldout()
    per_kind = count // len(KINDS)
    for k, (kind, render) in enumerate(KINDS.items()):
        (folder / kind).mkdir(parents=True)
        for n in range(per_kind):
            index = (n + 400 * k) % len(labels)
            label = int(labels[index])
            nth = int(np.count_nonzero(labels[:index] == label))
            suffix = ".jpg" if kind == "photo" else ".png"
            (folder / kind / f"{n:05d}-{label}{suffix}").write_bytes(render(label, nth))
    marker.write_text(str(count))


WARMUP_FILES = 2_000


def make_unique_folder(
    folder: Path, blobs: list[bytes], count: int = WARMUP_FILES, first: int = 10**9
) -> None:
    """count digits numbered from first, apart from SENT's (and from other folders' numbers), so
    no upload meets a cached result: the warm-up's, or a benchmark's own bulk runs."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for n in range(count):
        label = (n % len(blobs)) // 10  # blobs hold ten of each digit, in order
        (folder / f"{n:05d}-{label}.png").write_bytes(unique(blobs[n % len(blobs)], first + n))


def measure_bulk(settings: Settings, folder: Path, key: str) -> dict:
    out = STATE / "bulk.csv"
    for stale in (out, out.with_name(out.name + ".state.json")):
        stale.unlink(missing_ok=True)
    env = {**os.environ, "RECOG_GATEWAY_URL": settings.gateway_url, "RECOG_API_KEY": key}
    started = time.perf_counter()
    run = subprocess.run(
        [str(Path(sys.executable).parent / "recog"), "submit-folder", str(folder), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"submit-folder failed: {run.stderr[-2000:]}")
    rows = out.read_text().splitlines()[1:]
    right = sum(1 for r in rows if r.split(",")[0].rsplit("-", 1)[1].split(".")[0] == r.split(",")[2])
    return {
        "images": len(rows),
        "seconds": round(seconds, 1),
        "images_per_second": round(len(rows) / seconds, 1),
        "accuracy": round(right / len(rows), 4),
    }


# Every upload of a run numbered once: a phase re-sending an earlier phase's bytes would be
# answered from the worker's cache of earlier results, without the model.
SENT = itertools.count()


def drive(
    url: str, field: str, blobs: list[bytes], clients: int, seconds: float, params: dict, key: str = ""
) -> dict:
    """clients threads posting distinct images back to back for `seconds`."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = SENT
    stop = time.monotonic() + seconds

    def client() -> None:
        session = requests.Session()
        if key:
            session.headers["Authorization"] = f"Bearer {key}"
        while time.monotonic() < stop:
            n = next(counter)
            body = unique(blobs[n % len(blobs)], n)
            started = time.perf_counter()
            try:
                ok = session.post(url, params=params, files={field: (f"{n}.png", body)}, timeout=60).ok
            except requests.RequestException:
                ok = False
            with lock:
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "images_per_second": round(len(latencies) / elapsed, 1),
        **percentiles(latencies),
    }


PEAK_RSS_MB: dict[str, list[float]] = {}


def costed(
    run_dir: Path, phase, count_key: str = "requests", profile: Profiles | None = None
) -> tuple[dict, dict]:
    """Run a phase and read each process's CPU around it: (its figures, CPU ms per image).
    profile: py-spy records the phase too (its sampling costs CPU of its own, so the table of a
    profiled run is not compared with others)."""
    before = process_cpu.snapshot(run_dir)
    if profile is None:
        figures = phase()
    else:
        with profile:
            figures = phase()
    after = process_cpu.snapshot(run_dir)
    for name, sizes in process_cpu.rss_mb(run_dir).items():  # the largest each process was seen at
        PEAK_RSS_MB[name] = [
            max(a, b) for a, b in zip_longest(PEAK_RSS_MB.get(name, []), sizes, fillvalue=0.0)
        ]
    return figures, process_cpu.cost_per_image(before, after, figures[count_key])


def bench_stack(image_store: str = "volume", **overrides) -> LocalStack:
    """The benchmark's stack on its own ports; overrides: Settings fields for it (max_batch=1)."""
    settings = Settings.from_env(
        {},
        image_store=image_store,
        redis_url=f"redis://127.0.0.1:{PORTS['redis']}/0",
        cassandra_port=PORTS["cassandra"],
        cassandra_storage_port=PORTS["storage"],
        cassandra_protocol_version=3,
        image_dir=STATE / "stack" / "images",
        gateway_url=f"http://127.0.0.1:{PORTS['gateway']}",
        flower_url="http://127.0.0.1:28555",
        **overrides,
    )
    return LocalStack(settings, STATE / "stack", PROJECT_ROOT / ".recog" / "cache")


def start_fresh(stack: LocalStack, commitlog_sync: str = "batch") -> None:
    """A new stack in an empty state folder: Redis, Cassandra, schema, the workers, the gateway."""
    stack.down()
    shutil.rmtree(STATE / "stack", ignore_errors=True)
    for step in (
        stack.start_redis,
        lambda: stack.start_cassandra(commitlog_sync=commitlog_sync),
        stack.create_schema,
        stack.start_workers,
        stack.start_gateway,
        stack.wait_gateway_ready,
        stack.wait_workers_ready,
    ):
        step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--commitlog-sync",
        choices=("batch", "periodic"),
        default="batch",
        help="Cassandra's commit log: batch (what recog runs) or periodic (to see what durability costs)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="also record py-spy profiles of the gateway and the worker in the bulk and 32-client phases "
        "into this folder, and print where their samples were",
    )
    args = parser.parse_args()
    cache = PROJECT_ROOT / ".recog" / "cache" / "training"
    results: dict = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "clients": args.clients,
        "seconds": args.seconds,
        "commitlog_sync": args.commitlog_sync,
    }

    stack = bench_stack()
    print("limit: the model alone ...", flush=True)
    results["limit"], results["classify"] = measure_limit(stack.settings)
    folder = STATE / f"folder-{args.images}"
    print(f"rendering {args.images} images into {folder} (once) ...", flush=True)
    make_folder(folder, args.images, cache)
    blobs = [images.png_digit(d, i) for d in range(10) for i in range(10)]
    costs = results["cpu_ms_per_image"] = {}

    try:
        start_fresh(stack, args.commitlog_sync)
        key = stack.local_key()
        warmup = STATE / "warmup"
        make_unique_folder(warmup, blobs)
        print(f"warm-up: {WARMUP_FILES} other images via submit-folder ...", flush=True)
        results["warmup"], costs["warmup"] = costed(
            stack.run_dir, lambda: measure_bulk(stack.settings, warmup, key), "images"
        )
        print("bulk: submit-folder ...", flush=True)
        profile = {
            phase: Profiles(stack.run_dir, args.profile, phase) if args.profile else None
            for phase in ("bulk", "concurrent_batching")
        }
        results["bulk"], costs["bulk"] = costed(
            stack.run_dir,
            lambda: measure_bulk(stack.settings, folder, key),
            "images",
            profile["bulk"],
        )
        jobs_url = f"{stack.settings.gateway_url}/v1/jobs"
        print("single: one client with ?wait= ...", flush=True)
        results["single"], costs["single"] = costed(
            stack.run_dir, lambda: drive(jobs_url, "file", blobs, 1, min(args.seconds, 20), {"wait": 10}, key)
        )
        print("concurrent, dynamic batching on ...", flush=True)
        crowd = (jobs_url, "file", blobs, args.clients, args.seconds, {"wait": 30}, key)
        results["concurrent_batching"], costs["concurrent_batching"] = costed(
            stack.run_dir, lambda: drive(*crowd), profile=profile["concurrent_batching"]
        )
        stack.kill("worker1")
        off = bench_stack(max_batch=1)
        off.start_worker()
        off.wait_worker_ready()
        print("concurrent, max batch 1 ...", flush=True)
        results["concurrent_no_batching"], costs["concurrent_no_batching"] = costed(
            stack.run_dir, lambda: drive(*crowd)
        )
    finally:
        stack.down()

    print("seed-style baseline ...", flush=True)
    seed_argv = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-w",
        "1",
        "-k",
        "gthread",
        "--threads",
        "8",
        "-b",
        f"127.0.0.1:{PORTS['seed']}",
        "bench.seed_app:app",
    ]
    processes.start("seed", seed_argv, STATE / "run", STATE / "logs", cwd=ROOT_DIR)
    try:
        processes.wait_for_port("127.0.0.1", PORTS["seed"], 120, "seed app", STATE / "logs" / "seed.log")
        seed_url = f"http://127.0.0.1:{PORTS['seed']}/predict"
        drive(seed_url, "file", blobs, args.clients, 5, {})  # its warm-up
        results["seed_baseline"], costs["seed_baseline"] = costed(
            STATE / "run",
            lambda: drive(seed_url, "file", blobs, args.clients, args.seconds, {}),
        )
    finally:
        processes.stop(STATE / "run", "seed")

    results["rss_mb"] = PEAK_RSS_MB
    if args.profile:
        results["profile"] = {
            phase: {name: top_functions(recorder.path(name)) for name in PROFILED}
            for phase, recorder in profile.items()
        }
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def report(r: dict) -> None:
    base = r["seed_baseline"]["images_per_second"] or 1e-9
    limit = r["limit"]["images_per_second"]
    rows = [
        (
            f"limit: model alone ({r['limit'].get('call', 'keras')}), batch {r['limit']['batch_size']}",
            limit,
            None,
        ),
        ("classify: decode, preprocess, model", r["classify"]["images_per_second"], None),
        (f"warm-up: {r['warmup']['images']} on a fresh stack", r["warmup"]["images_per_second"], None),
        (f"bulk: {r['bulk']['images']} images via submit-folder", r["bulk"]["images_per_second"], None),
        ("single: 1 client, ?wait=", r["single"]["images_per_second"], r["single"]),
        (
            f"{r['clients']} clients, dynamic batching",
            r["concurrent_batching"]["images_per_second"],
            r["concurrent_batching"],
        ),
        (
            f"{r['clients']} clients, max batch 1",
            r["concurrent_no_batching"]["images_per_second"],
            r["concurrent_no_batching"],
        ),
        (f"seed-style baseline, {r['clients']} clients", base, r["seed_baseline"]),
    ]
    print(f"\n{'path':42s} {'img/s':>8s} {'% limit':>8s} {'x seed':>7s} {'p50':>7s} {'p95':>7s} {'p99':>7s}")
    for name, rate, lat in rows:
        lat = lat or {}
        cells = [
            f"{lat.get(k):7.1f}" if lat.get(k) is not None else f"{'':7s}"
            for k in ("p50_ms", "p95_ms", "p99_ms")
        ]
        print(f"{name:42s} {rate:8.1f} {100 * rate / limit:7.1f}% {rate / base:6.1f}x {' '.join(cells)}")
    on, off = r["concurrent_batching"]["images_per_second"], r["concurrent_no_batching"]["images_per_second"]
    print(
        f"\nbatching on / off at {r['clients']} clients: {on / max(off, 1e-9):.2f}x; "
        f"bulk accuracy {r['bulk']['accuracy']:.2%}"
    )
    for phase, parts in r.get("profile", {}).items():
        for name, top in parts.items():
            print(f"\npy-spy, {phase}, {name}: where its samples were (own time)")
            for function, share in top:
                print(f"  {share:6.1%}  {function}")
    print("\nresident memory after each phase, largest, MB (group leader first):")
    for name, sizes in r.get("rss_mb", {}).items():
        print(f"  {name:10s} {' + '.join(f'{mb:.0f}' for mb in sizes)} = {sum(sizes):.0f}")
    costs = r.get("cpu_ms_per_image", {})
    parts = [*process_cpu.PARTS, "total", "client"]
    print(f"\nCPU ms per image {'':25s}" + "".join(f"{p:>10s}" for p in parts))
    for phase, cost in costs.items():
        print(f"{phase:42s}" + "".join(f"{cost.get(p, 0.0):10.2f}" for p in parts))


if __name__ == "__main__":
    main()
