"""Train the digit CNN on MNIST with augmentation, deterministically, and score the held-out split."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model import lite, mnist_data, registry
from model.augment import augment_batch
from model.preprocess import to_mnist

SEED = 1234
EPOCHS = 30
BATCH = 128
LEARNING_RATE = 2e-3


@dataclass
class TrainResult:
    held_out_accuracy: float
    train_seconds: float
    epochs: int
    n_train: int
    n_held_out: int


def prepare(images: np.ndarray) -> np.ndarray:
    """Run training digits through the serving preprocessing, so both see the same geometry."""
    out = np.zeros((len(images), 28, 28, 1), dtype=np.float32)
    for i, img in enumerate(images):
        digit = to_mnist(Image.fromarray(img, mode="L"))
        if digit is not None:
            out[i, :, :, 0] = digit
    return out


def train(
    models_dir: Path,
    cache_dir: Path,
    epochs: int = EPOCHS,
    resume: bool = False,
    name: str = "digits",
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Fresh augmented copies every epoch from one seeded generator; same inputs, same weights."""
    import keras
    import tensorflow as tf

    from model.network import build_cnn

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(SEED)
    images, labels = mnist_data.load(cache_dir)
    train_idx, held_idx = mnist_data.split(len(images))
    x_train, y_train = prepare(images[train_idx])[..., 0], labels[train_idx]
    x_held, y_held = prepare(images[held_idx]), labels[held_idx]

    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / registry.WEIGHTS_FILE
    model = keras.models.load_model(weights) if resume else build_cnn()
    steps = epochs * int(np.ceil(len(x_train) / BATCH))
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps)),
        loss="sparse_categorical_crossentropy",
    )
    started = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(x_train))
        x_aug = augment_batch(x_train[order], rng)[..., None]
        history = model.fit(x_aug, y_train[order], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        log(
            f"epoch {epoch + 1}/{epochs}: loss {history.history['loss'][-1]:.4f}, "
            f"held-out {accuracy(model, x_held, y_held):.4f}, {time.perf_counter() - started:.0f} s"
        )
    seconds = time.perf_counter() - started
    # The weights replace the old ones last, after the flatbuffer made from them: a worker that
    # reloads on the new weights finds their flatbuffer already there (model/lite.py).
    fresh = folder / f"next-{registry.WEIGHTS_FILE}"
    _save_for_serving(model, fresh)
    try:
        lite.write_pair(fresh, folder)
    except Exception as exc:  # the weights are good all the same: workers convert them at load
        log(f"could not convert the weights for CPU workers ({exc}); run `recog export-lite --name {name}`")
    (folder / registry.LABELS_FILE).write_text("".join(f"{d}\n" for d in range(10)))
    os.replace(fresh, weights)
    result = TrainResult(
        accuracy(model, x_held, y_held), round(seconds, 1), epochs, len(x_train), len(x_held)
    )
    (folder / "training.json").write_text(json.dumps(result.__dict__, indent=2) + "\n")
    return result


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(model(x, training=False)).argmax(1) == y).mean())


def _save_for_serving(model, path: Path) -> None:
    """Weights without optimiser state: a third of the size, and all that serving loads."""
    import keras

    # A new, uncompiled model over the same layers carries no optimiser into the file.
    keras.Model(model.inputs, model.outputs, name=model.name).save(path)
