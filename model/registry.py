"""Where models live and what version each one is; no TensorFlow, so the gateway can use it.

A model is a folder `<models_dir>/<name>/` holding `model.keras` and `labels.txt` (one label a
line, in output order). Its version is the start of the weights file's sha256, so every stored
result names the exact weights that produced it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

WEIGHTS_FILE = "model.keras"
LABELS_FILE = "labels.txt"


class UnknownModel(LookupError):
    """The named model has no folder; the message lists the ones there are."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    weights: Path
    labels: tuple[str, ...]


def available(models_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in models_dir.glob(f"*/{WEIGHTS_FILE}"))


def describe(models_dir: Path, name: str) -> ModelInfo:
    folder = models_dir / name
    weights = folder / WEIGHTS_FILE
    if not name or "/" in name or not weights.is_file():
        names = ", ".join(available(models_dir)) or "none"
        raise UnknownModel(f"unknown model {name!r}; available: {names}")
    labels = tuple(line.strip() for line in (folder / LABELS_FILE).read_text().splitlines() if line.strip())
    return ModelInfo(name, _version(weights, weights.stat().st_mtime_ns), weights, labels)


@lru_cache(maxsize=32)
def _version(weights: Path, _mtime_ns: int) -> str:
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
