"""A loaded model that turns a batch of images into predictions; TensorFlow lives here only."""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model import registry
from model.preprocess import WORK_SIDE, to_mnist
from shared.decode import ImageRejected, open_image

log = logging.getLogger(__name__)
# The most images one interpreter call takes: a larger batch (an evaluation's 10,000) goes in
# pieces, so its activations never need more than about 30 MB.
LITE_BATCH = 256
NO_DIGIT = "no digit found: the image is blank or holds only a dot"


@dataclass
class Prediction:
    label: str | None
    confidence: float | None
    probabilities: list[float] = field(default_factory=list)
    reason: str | None = None


@dataclass
class BatchOutcome:
    predictions: list[Prediction | ImageRejected]
    inference_ms: float
    batch_size: int


def configure_threads(threads: int) -> None:
    """Takes effect only before the process's first TensorFlow op; later, the threads stay as they are."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised (a second model in one process)
        pass


def prepare(blob: bytes, max_pixels: int) -> np.ndarray | None | ImageRejected:
    """The model's input for one image, None when it holds no digit, or why it cannot be used."""
    try:
        return to_mnist(open_image(blob, max_pixels, grey_side=WORK_SIDE))
    except ImageRejected as exc:
        return exc.with_traceback(None)  # keeps no decoded image alive
    except MemoryError:
        raise
    except Exception as exc:  # a flaw of ours on one odd image must not fail its chunk
        log.exception("preprocessing an image failed")
        return ImageRejected(f"the image could not be prepared for the model ({exc})")


class Recogniser:
    """One model held in memory; `recognise_prepared` (or `recognise_bytes`, which prepares the
    images first) runs one model call for a whole batch."""

    def __init__(self, models_dir: Path, name: str) -> None:
        import keras
        import tensorflow as tf

        self.info = registry.describe(models_dir, name)
        model = keras.models.load_model(self.info.weights, compile=False)
        if tf.config.list_physical_devices("GPU"):
            self._call = traced_call(model)
        else:
            try:
                # As many threads as configure_threads gave TensorFlow (0: its default).
                threads = tf.config.threading.get_intra_op_parallelism_threads() or None
                self._call = LiteModel(model, threads)
            except Exception:  # a model of the user's with a layer Lite cannot convert: still served
                log.warning(
                    "model %s: TensorFlow Lite could not convert it; Keras runs it", name, exc_info=True
                )
                self._call = traced_call(model)

    def predict_arrays(self, batch: np.ndarray) -> np.ndarray:
        return self._call(batch)

    def prepare(self, blob: bytes, max_pixels: int) -> np.ndarray | None | ImageRejected:
        """prepare() of this module: what recognise_prepared takes, one image at a time."""
        return prepare(blob, max_pixels)

    def recognise_bytes(self, blobs: list[bytes], max_pixels: int) -> BatchOutcome:
        """Decode and preprocess one image at a time, so a chunk of large images never sits decoded
        all at once (a 4000x4000 PNG is ~70 KB uploaded, ~50 MB decoded); then one model call for
        all that have ink. An image that fails becomes its own ImageRejected; the rest go on."""
        return self.recognise_prepared([prepare(blob, max_pixels) for blob in blobs])

    def recognise_prepared(self, digits: list[np.ndarray | None | ImageRejected]) -> BatchOutcome:
        """One model call for what prepare() made of each image."""
        inputs = [d for d in digits if isinstance(d, np.ndarray)]
        started = time.perf_counter()
        probs = self.predict_arrays(np.stack(inputs)[..., None]) if inputs else np.zeros((0, 0))
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        rows = iter(probs)
        out: list[Prediction | ImageRejected] = []
        for d in digits:
            if isinstance(d, ImageRejected):
                out.append(d)
            elif d is None:
                out.append(Prediction(None, None, [], NO_DIGIT))
            else:
                out.append(self._prediction(next(rows)))
        return BatchOutcome(out, elapsed_ms, len(inputs))

    def _prediction(self, probs: np.ndarray) -> Prediction:
        rounded = [round(float(p), 6) for p in probs]
        best = int(probs.argmax())
        return Prediction(self.info.labels[best], rounded[best], rounded)


def traced_call(model):
    """A Keras model's traced call, not model.predict(): predict() costs ~47 ms per small batch
    here. Arrays in, arrays out, as LiteModel."""
    import tensorflow as tf

    traced = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)],
        reduce_retracing=True,
    )
    return lambda x: traced(x).numpy()


class LiteModel:
    """A Keras model converted for TensorFlow Lite's interpreter, on the CPU: a lone image took
    0.6-0.7 ms after a pause against 2.4-2.8 ms through a traced Keras call, 8 at once 0.45 ms of
    CPU an image against 0.65, sizes from 1 to 16 in turn 0.45 against 0.63 (sizing its tensors
    again costs little), 64-128 the same as Keras (bench/model_call.py). One caller at a time: an
    interpreter holds its input and output in place."""

    def __init__(self, model, threads: int | None) -> None:
        import tensorflow as tf

        with contextlib.redirect_stdout(io.StringIO()):  # the conversion prints what it exported
            flat = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        with warnings.catch_warnings():
            # Deprecated in favour of LiteRT's own package, yet in the TensorFlow release pinned
            # here (constraints.txt); the converter above stays TensorFlow's either way.
            warnings.simplefilter("ignore", UserWarning)
            self._interpreter = tf.lite.Interpreter(model_content=flat, num_threads=threads)
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
