"""Score a model on the fixed held-out MNIST split: accuracy, per class, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model import mnist_data


@dataclass
class Evaluation:
    accuracy: float
    per_class: list[float]
    confusion: list[list[int]]
    n: int
    expected_calibration_error: float


def evaluate(models_dir: Path, cache_dir: Path, name: str = "digits") -> Evaluation:
    from model.recogniser import Recogniser
    from model.training import prepare

    images, labels = mnist_data.load(cache_dir)
    _, held = mnist_data.split(len(images))
    x, y = prepare(images[held]), labels[held]
    probs = Recogniser(models_dir, name).predict_arrays(x)
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (y, predicted), 1)
    per_class = (confusion.diagonal() / confusion.sum(axis=1)).round(4).tolist()
    ece = calibration_error(probs.max(axis=1), predicted == y)
    return Evaluation(float((predicted == y).mean()), per_class, confusion.tolist(), len(y), ece)


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: the gap between confidence and accuracy, weighted per bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(total)
