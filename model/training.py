"""Train the digit CNN on MNIST with augmentation, deterministically, and score the held-out split."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model import mnist_data, registry
from model.preprocess import to_mnist

SEED = 1234


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


def augmenter():
    """Shifts, rotation, scale and stroke width: the variety real uploads have that MNIST lacks."""
    import keras
    import tensorflow as tf
    from keras import layers

    geometry = keras.Sequential(
        [
            layers.RandomRotation(0.06, fill_mode="constant", seed=SEED),
            layers.RandomZoom((-0.15, 0.1), fill_mode="constant", seed=SEED + 1),
            layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=SEED + 2),
        ]
    )

    def stroke(x):
        # Per image: thicken (max-pool), thin (min-pool) or leave the stroke as it is.
        choice = tf.random.uniform([tf.shape(x)[0], 1, 1, 1], 0, 3, dtype=tf.int32, seed=SEED)
        thick = tf.nn.max_pool2d(x, 2, 1, "SAME")
        thin = -tf.nn.max_pool2d(-x, 2, 1, "SAME")
        return tf.where(choice == 0, thick, tf.where(choice == 1, thin, x))

    def apply(x, y):
        x = geometry(x, training=True)
        return tf.clip_by_value(stroke(x), 0.0, 1.0), y

    return apply


def _save_for_serving(model, path: Path) -> None:
    """Weights without optimiser state: a third of the size, and all that serving loads."""
    import keras

    # A new, uncompiled model over the same layers carries no optimiser into the file.
    keras.Model(model.inputs, model.outputs, name=model.name).save(path)


def train(
    models_dir: Path, cache_dir: Path, epochs: int = 15, resume: bool = False, name: str = "digits"
) -> TrainResult:
    import keras
    import tensorflow as tf

    from model.network import build_cnn

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    images, labels, _ = mnist_data.load(cache_dir)
    train_idx, held_idx = mnist_data.split(len(images))
    x_train, y_train = prepare(images[train_idx]), labels[train_idx]
    x_held, y_held = prepare(images[held_idx]), labels[held_idx]

    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / registry.WEIGHTS_FILE
    model = keras.models.load_model(weights) if resume else build_cnn()
    steps = epochs * int(np.ceil(len(x_train) / 128))
    schedule = keras.optimizers.schedules.CosineDecay(1.5e-3, steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    data = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=SEED)
        .batch(128)
        .map(augmenter())
        .prefetch(2)
    )
    started = time.perf_counter()
    model.fit(data, epochs=epochs, validation_data=(x_held, y_held), verbose=2)
    seconds = time.perf_counter() - started
    _save_for_serving(model, weights)
    (folder / registry.LABELS_FILE).write_text("".join(f"{d}\n" for d in range(10)))
    accuracy = float((model(x_held, training=False).numpy().argmax(1) == y_held).mean())
    result = TrainResult(accuracy, round(seconds, 1), epochs, len(x_train), len(x_held))
    (folder / "training.json").write_text(json.dumps(result.__dict__, indent=2) + "\n")
    return result
