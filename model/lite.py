"""A model as a TensorFlow Lite flatbuffer, run on a CPU by LiteRT's interpreter (ai-edge-litert).

A model folder may hold `model.tflite`, converted from its weights (`recog train` and `recog
export-lite` write it), and `model.tflite.json`, naming the weights version it was converted from.
A process that finds the pair matching its weights loads neither TensorFlow nor Keras: a worker's
pool process then starts in a fraction of a second and holds about 80 MB for the model instead of
about 540 (bench/model_load.py). A folder without the pair (a model copied in with its weights
alone), or with a pair left from other weights, has its weights converted at load, by TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np

from model import registry

log = logging.getLogger(__name__)

LITE_FILE = "model.tflite"
LITE_STAMP = "model.tflite.json"
# The most images one interpreter call takes: a larger batch (an evaluation's 10,000) goes in
# pieces, so its activations never need more than about 30 MB.
LITE_BATCH = 256


def converted(info: registry.ModelInfo) -> bytes | None:
    """The model folder's flatbuffer, when its stamp names these weights; None otherwise."""
    folder = info.weights.parent
    try:
        stamp = json.loads((folder / LITE_STAMP).read_text())
        if stamp.get("weights_version") != info.version:
            log.warning(
                "model %s: %s was converted from weights %s, not from these (%s); converting them at load",
                info.name,
                LITE_FILE,
                stamp.get("weights_version"),
                info.version,
            )
            return None
        return (folder / LITE_FILE).read_bytes()
    except FileNotFoundError:
        return None
    except (ValueError, AttributeError, OSError) as exc:  # an unreadable stamp: as if there were none
        log.warning(
            "model %s: %s unreadable (%s); converting its weights at load", info.name, LITE_STAMP, exc
        )
        return None


def convert(weights: Path) -> bytes:
    """The weights as a flatbuffer; the one place TensorFlow's converter runs."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(weights, compile=False)
    with contextlib.redirect_stdout(io.StringIO()):  # the conversion prints what it exported
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def export(models_dir: Path, name: str) -> Path:
    """Write the named model's flatbuffer and its stamp beside its weights; the flatbuffer first,
    each by a rename, so a reader never pairs a stamp with another conversion's file."""
    info = registry.describe(models_dir, name)
    folder = info.weights.parent
    _replace(folder / LITE_FILE, convert(info.weights))
    stamp = {"weights": info.weights.name, "weights_version": info.version}
    _replace(folder / LITE_STAMP, (json.dumps(stamp, indent=2) + "\n").encode())
    return folder / LITE_FILE


def _replace(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    os.replace(part, path)


class LiteModel:
    """A lone image took 0.6-0.7 ms after a pause against 2.4-2.8 ms through a traced Keras call,
    8 at once 0.45 ms of CPU an image against 0.65, sizes from 1 to 16 in turn 0.45 against 0.63
    (sizing its tensors again costs little), 64-128 the same as Keras (bench/model_call.py). One
    caller at a time: an interpreter holds its input and output in place."""

    def __init__(self, flatbuffer: bytes, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shape: tuple | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) > LITE_BATCH:
            return np.concatenate([self(batch[i : i + LITE_BATCH]) for i in range(0, len(batch), LITE_BATCH)])
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.shape != self._shape:  # tensors sized for this batch once, not every call
            self._interpreter.resize_tensor_input(self._input, batch.shape)
            self._interpreter.allocate_tensors()
            self._shape = batch.shape
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)  # a copy: the next call reuses the buffer
