"""Where models live and what version each one is; no TensorFlow, so the gateway can use it.

A model is a folder `<models_dir>/<name>/` holding a Keras model file (`model.keras`, or a legacy
`model.h5`) that takes 28x28x1 MNIST-style input, and `labels.txt` (one label a line, in output
order). Its version is the start of the weights file's sha256, so every stored
result names the exact weights that produced it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

WEIGHTS_FILE = "model.keras"
WEIGHTS_FILES = (WEIGHTS_FILE, "model.h5")
LABELS_FILE = "labels.txt"


class UnknownModel(LookupError):
    """The named model has no folder; the message lists the ones there are."""


class UnusableModel(UnknownModel):
    """The named model's folder cannot serve (its labels do not match its outputs): its jobs fail
    with the message, as an unknown model's do."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    weights: Path
    labels: tuple[str, ...]


def available(models_dir: Path) -> list[str]:
    return sorted(
        {
            p.parent.name
            for f in WEIGHTS_FILES
            for p in models_dir.glob(f"*/{f}")
            if (p.parent / LABELS_FILE).is_file()
        }
    )


def describe(models_dir: Path, name: str) -> ModelInfo:
    if name not in available(models_dir):
        names = ", ".join(available(models_dir)) or "none"
        raise UnknownModel(f"unknown model {name!r}; available: {names}")
    folder = models_dir / name
    weights = next(folder / f for f in WEIGHTS_FILES if (folder / f).is_file())
    labels = tuple(line.strip() for line in (folder / LABELS_FILE).read_text().splitlines() if line.strip())
    return ModelInfo(name, file_version(weights), weights, labels)


def file_version(weights: Path) -> str:
    """The version of the weights in that file, as describe() gives it."""
    return _version(weights, weights.stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _version(weights: Path, _mtime_ns: int) -> str:
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
