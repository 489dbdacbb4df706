"""How fast `recog classify` recognises 1,000 images, batched and one at a time.

Side by side in one run: the model alone on preprocessed arrays (the limit), the batched path
(decode + preprocess + one model call per 256), the one-at-a-time path, and the seeds' way
(`model.predict()` per image) as the baseline. Prints a table; --json FILE writes the figures.

    .venv/bin/python bench/classify_speed.py --json bench/classify_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import seed_preprocess  # noqa: E402
from model.preprocess import to_mnist  # noqa: E402
from model.recogniser import Recogniser, configure_threads, keras_model  # noqa: E402
from shared.decode import open_image  # noqa: E402
from shared.settings import Settings  # noqa: E402
from tests import images  # noqa: E402

N = 1000


def timed(run, n: int) -> float:
    started = time.perf_counter()
    run()
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    configure_threads(args.threads)
    settings = Settings.from_env()
    recogniser = Recogniser(settings.models_dir, settings.model)
    _, labels = images.heldout()
    blobs = [images.png_digit(int(labels[i % 100]), (i // 100) % 10) for i in range(N)]
    arrays = np.stack([to_mnist(open_image(b, settings.max_image_pixels)) for b in blobs])[..., None]
    recogniser.recognise_bytes(blobs[:8], settings.max_image_pixels)  # warm up the model call

    def batched():
        for start in range(0, N, 256):
            recogniser.recognise_bytes(blobs[start : start + 256], settings.max_image_pixels)

    def single():
        for blob in blobs:
            recogniser.recognise_bytes([blob], settings.max_image_pixels)

    model = keras_model(recogniser.info.weights)  # the seed's Keras call

    def seed_style():
        for blob in blobs[:200]:
            digit = seed_preprocess.to_mnist(open_image(blob, settings.max_image_pixels))
            model.predict(digit[None, ..., None], verbose=0)

    rows = {
        "model only, batch 256 (limit)": timed(
            lambda: [recogniser.predict_arrays(arrays[s : s + 256]) for s in range(0, N, 256)], N
        ),
        "recog classify, batch 256": timed(batched, N),
        "recog classify, one at a time": timed(single, N),
        "seed-style model.predict() per image": timed(seed_style, 200),
    }
    baseline = rows["seed-style model.predict() per image"]
    print(f"{'path':40s} {'images/s':>10s} {'x baseline':>11s}")
    for name, rate in rows.items():
        print(f"{name:40s} {rate:10.0f} {rate / baseline:10.1f}x")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "images": N,
                    "threads": args.threads,
                    "machine": platform.platform(),
                    "cpus": __import__("os").cpu_count(),
                    "images_per_second": rows,
                    "model_version": recogniser.info.version,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
