"""What one model call costs: the traced Keras call the workers used until 2026-12-06 beside
TensorFlow Lite's interpreter (model.lite.LiteModel, LiteRT's since 2026-12-06, what a CPU worker runs), one
thread each as a worker's pool process has, calls alternated.

A lone image is called after a 20 ms pause, as a single job meets the model: the Keras call's
fixed cost shows there. Batches are timed back to back, in CPU ms an image; "1-16 at random" is
what gathered single jobs make, each size change making the interpreter size its tensors again.

    .venv/bin/python bench/model_call.py --json bench/model_call.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.lite import LiteModel, convert  # noqa: E402
from model.recogniser import configure_threads, keras_model, traced_call  # noqa: E402
from model.registry import describe  # noqa: E402
from shared.settings import Settings  # noqa: E402

BATCHES = (8, 64, 128)


def lone_ms(call, x: np.ndarray, calls: int) -> float:
    """Median wall ms of one image after a pause."""
    spent = []
    for _ in range(calls):
        time.sleep(0.02)
        started = time.perf_counter()
        call(x)
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent)


def batch_cpu_ms(call, x: np.ndarray, images: int) -> float:
    call(x)
    calls = max(images // len(x), 5)
    started = time.process_time()
    for _ in range(calls):
        call(x)
    return (time.process_time() - started) * 1000 / (calls * len(x))


def mixed_cpu_ms(call, x: np.ndarray, sizes: np.ndarray) -> float:
    started = time.process_time()
    for size in sizes:
        call(x[:size])
    return (time.process_time() - started) * 1000 / sizes.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    configure_threads(1)
    weights = describe(Settings.from_env().models_dir, "digits").weights
    calls = {
        "Keras, traced": traced_call(keras_model(weights)),
        "TensorFlow Lite": LiteModel(convert(weights), 1, 10),
    }
    rng = np.random.default_rng(0)
    inputs = {size: rng.random((size, 28, 28, 1), dtype=np.float32) for size in (1, 16, *BATCHES)}
    mixed = rng.integers(1, 17, 400)
    results: dict[str, dict[str, list[float]]] = {name: {} for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            results[name].setdefault("lone image, wall ms", []).append(lone_ms(call, inputs[1], 100))
            for size in BATCHES:
                key = f"batch {size}, CPU ms an image"
                results[name].setdefault(key, []).append(batch_cpu_ms(call, inputs[size], 2000))
            key = "batches of 1-16 at random, CPU ms an image"
            results[name].setdefault(key, []).append(mixed_cpu_ms(call, inputs[16], mixed))
    rows = list(results["Keras, traced"])
    print(f"{'':28s}" + "".join(f"{name:>18s}" for name in calls))
    for row in rows:
        print(f"{row:28s}" + "".join(f"{statistics.median(results[name][row]):18.3f}" for name in calls))
    if args.json:
        args.json.write_text(json.dumps({"rounds": args.rounds, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
