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


def evaluate(models_dir: Path, cache_dir: Path, name: str = "digits") -> Evaluation:
    from model.recogniser import Recogniser
    from model.training import prepare

    images, labels, _ = mnist_data.load(cache_dir)
    _, held = mnist_data.split(len(images))
    x, y = prepare(images[held]), labels[held]
    predicted = Recogniser(models_dir, name).predict_arrays(x).argmax(axis=1)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (y, predicted), 1)
    per_class = (confusion.diagonal() / confusion.sum(axis=1)).round(4).tolist()
    return Evaluation(float((predicted == y).mean()), per_class, confusion.tolist(), len(y))
