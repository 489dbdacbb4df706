"""A model as a TensorFlow Lite flatbuffer, run on a CPU by LiteRT's interpreter (ai-edge-litert).

A model folder may hold `model.tflite`, converted from its weights (`recog train` and `recog
export-lite` write it), and `model.tflite.json`, its stamp: the weights version it was converted
from and the flatbuffer's own sha256. A process that finds a flatbuffer matching both loads neither
TensorFlow nor Keras: a worker's pool process then loads the model in about 0.1 s and holds 65 MB,
against about 4 s and 620 MB when TensorFlow converts the weights (bench/model_load.py). Without
such a pair (a model copied in with its weights alone, a flatbuffer left from other weights, one
copied in only half) the weights are converted at load, by TensorFlow, so an answer always comes
from the weights its version names.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
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
    """The model folder's flatbuffer when its stamp names these weights and these bytes; None
    (and a warning that says why and what to run) otherwise."""
    folder = info.weights.parent
    if not (folder / LITE_STAMP).exists() and not (folder / LITE_FILE).exists():
        why = f"it has no {LITE_FILE}"
    else:
        try:
            stamp = json.loads((folder / LITE_STAMP).read_text())
            flatbuffer = (folder / LITE_FILE).read_bytes()
        except (OSError, ValueError) as exc:
            why = f"its {LITE_FILE} or {LITE_STAMP} cannot be read ({exc})"
        else:
            if not isinstance(stamp, dict) or stamp.get("weights_version") != info.version:
                why = f"its {LITE_FILE} was converted from other weights than these ({info.version})"
            elif stamp.get("sha256") != hashlib.sha256(flatbuffer).hexdigest():
                why = f"its {LITE_FILE} is not the file its {LITE_STAMP} describes"
            else:
                return flatbuffer
    log.warning(
        "model %s: %s; converting its weights with TensorFlow at each load (about 4 s and 620 MB a "
        "process) until `recog export-lite --name %s` writes one",
        info.name,
        why,
        info.name,
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
    """`recog export-lite`: the pair for the named model's weights, beside them."""
    info = registry.describe(models_dir, name)
    write_pair(info.weights, info.weights.parent)
    return info.weights.parent / LITE_FILE


def write_pair(weights: Path, folder: Path) -> None:
    """The flatbuffer of these weights and its stamp, in folder; each replaces the old one whole
    (a reader sees the old file or the new, and a stamp that does not describe the file beside it
    is not believed). Weights that change while they are converted fail it: run it again."""
    version = registry.file_version(weights)
    flatbuffer = convert(weights)
    if registry.file_version(weights) != version:
        raise RuntimeError(f"{weights} changed while it was being converted: run the export again")
    stamp = {"weights_version": version, "sha256": hashlib.sha256(flatbuffer).hexdigest()}
    _replace(folder / LITE_FILE, flatbuffer)
    _replace(folder / LITE_STAMP, (json.dumps(stamp, indent=2) + "\n").encode())


def _replace(path: Path, data: bytes) -> None:
    """Written to a file of its own beside path, synced, then renamed over it."""
    handle, part = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            # mkstemp makes it 0600: readable by whichever user a worker runs as instead, as the
            # files a checkout or a training writes are.
            os.fchmod(out.fileno(), 0o644)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself, durable
    finally:
        os.close(folder)


class WrongOutputs(ValueError):
    """A model whose probabilities do not match its labels: one per label, in order."""


class LiteModel:
    """A lone image took 0.6-0.7 ms after a pause against 2.4-2.8 ms through a traced Keras call,
    8 at once 0.45 ms of CPU an image against 0.65, sizes from 1 to 16 in turn 0.45 against 0.63
    (sizing its tensors again costs little), 64-128 the same as Keras (bench/model_call.py). One
    caller at a time: an interpreter holds its input and output in place.

    Made only once the flatbuffer has answered one image with `outputs` probabilities: a file
    that parses but cannot run fails here, where its caller can fall back, not at every job."""

    def __init__(self, flatbuffer: bytes, threads: int | None, outputs: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shape: tuple | None = None
        answer = self(np.zeros((1, 28, 28, 1), dtype=np.float32))
        if answer.shape != (1, outputs):
            raise WrongOutputs(
                f"it gives {answer.shape[-1]} probabilities an image, and its {registry.LABELS_FILE} names "
                f"{outputs} labels"
            )

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
