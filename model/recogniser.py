"""A loaded model that turns a batch of images into predictions.

On a CPU the model runs in LiteRT's interpreter (model/lite.py), from the flatbuffer its folder
ships. TensorFlow is imported only to convert weights that have none, for a model Lite cannot run,
and where a GPU build of TensorFlow is installed and a GPU device present (to ask TensorFlow
whether it can use it, and then run the model on it).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model import lite, registry
from model.preprocess import WORK_SIDE, to_mnist
from shared.decode import ImageRejected, open_image

log = logging.getLogger(__name__)
NO_DIGIT = "no digit found: the image is blank or holds only a dot"
# Threads for the model's math (configure_threads); None: TensorFlow's default, LiteRT's one thread.
_threads: int | None = None


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
    """The threads every model of this process computes on: LiteRT's interpreters, and TensorFlow
    if this process imports it, before its first op (later, its threads stay as they are)."""
    global _threads
    _threads = threads
    if "tensorflow" in sys.modules:
        _configure_tensorflow(sys.modules["tensorflow"])


def _tensorflow():
    """TensorFlow, imported on first need, with the configured threads."""
    import tensorflow as tf

    _configure_tensorflow(tf)
    return tf


def _configure_tensorflow(tf) -> None:
    if _threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(_threads)
        tf.config.threading.set_inter_op_parallelism_threads(_threads)
    except RuntimeError:  # TensorFlow already initialised (a second model in one process)
        pass


# TensorFlow's builds that can use a GPU (tensorflow-cpu cannot), and the device files of the
# GPUs they use: NVIDIA's, WSL's, AMD's.
GPU_BUILDS = ("tensorflow", "tensorflow-rocm")
DEVICES = Path("/dev")
GPU_DEVICES = ("nvidia[0-9]*", "dxg", "kfd")


def _gpu_visible() -> bool:
    """A GPU TensorFlow can use. Only TensorFlow can tell, and importing it costs a process about
    4 s and 600 MB, so it is asked only where a GPU build is installed, a GPU device present, and
    CUDA_VISIBLE_DEVICES does not hide every GPU."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    if not any(any(DEVICES.glob(pattern)) for pattern in GPU_DEVICES):
        return False
    if not any(_installed(build) for build in GPU_BUILDS):
        return False
    try:
        return bool(_tensorflow().config.list_physical_devices("GPU"))
    except ImportError:  # a GPU build that cannot load (its CUDA libraries missing): the CPU it is
        log.warning("a GPU build of TensorFlow is installed but cannot be imported", exc_info=True)
        return False


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


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
        self.info = registry.describe(models_dir, name)
        if _gpu_visible():
            self._call = traced_call(keras_model(self.info.weights))
            return
        flatbuffer = lite.converted(self.info)
        if flatbuffer is not None:
            try:
                self._call = self._lite(flatbuffer)
                return
            except ImportError as exc:  # LiteRT not installed: TensorFlow runs the model
                log.warning("model %s: no LiteRT (%s); TensorFlow runs it", name, exc)
                self._call = traced_call(keras_model(self.info.weights))
                return
            except (ValueError, RuntimeError) as exc:  # damaged past what its stamp can tell
                log.warning(
                    "model %s: its %s cannot run (%s); converting its weights until `recog export-lite "
                    "--name %s` writes another",
                    name,
                    lite.LITE_FILE,
                    exc,
                    name,
                )
        self._call = self._converted()

    def _lite(self, flatbuffer: bytes) -> lite.LiteModel:
        try:
            return lite.LiteModel(flatbuffer, _threads, len(self.info.labels))
        except lite.WrongOutputs as exc:  # no conversion or fallback mends that: its jobs fail
            raise registry.UnusableModel(f"model {self.info.name} cannot be used: {exc}") from exc

    def _converted(self):
        """The weights converted now (TensorFlow's converter); Keras itself where Lite cannot
        convert them (a layer it lacks) or run the result: still served."""
        try:
            _tensorflow()  # imported here, so that it computes on the configured threads
        except ImportError as exc:
            missing = (
                f"{lite.LITE_FILE} for its weights cannot be used, and there is no TensorFlow to convert them"
            )
            raise RuntimeError(f"model {self.info.name}: {missing}") from exc
        try:
            return self._lite(lite.convert(self.info.weights))
        except registry.UnusableModel:
            raise
        except Exception as exc:
            log.warning(
                "model %s: TensorFlow Lite cannot run it (%s); Keras runs it",
                self.info.name,
                exc,
                exc_info=True,
            )
            return traced_call(keras_model(self.info.weights))

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


def keras_model(weights: Path):
    """The Keras model, TensorFlow imported first with the configured threads (keras would start
    it on its default ones)."""
    _tensorflow()
    import keras

    return keras.models.load_model(weights, compile=False)


def traced_call(model):
    """A Keras model's traced call, not model.predict(): predict() costs ~47 ms per small batch
    here. Arrays in, arrays out, as lite.LiteModel."""
    tf = _tensorflow()

    traced = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)],
        reduce_retracing=True,
    )
    return lambda x: traced(x).numpy()
