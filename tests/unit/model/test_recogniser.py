"""The committed digit model, loaded for real, on held-out digits rendered as uploads."""

import pytest

from model.recogniser import NO_DIGIT, Recogniser
from shared.decode import ImageRejected
from shared.settings import Settings
from tests import images


@pytest.fixture(scope="module")
def recogniser():
    return Recogniser(Settings.from_env({}).models_dir, "digits")


def test_reads_held_out_digits_on_paper(recogniser):
    _, labels = images.heldout()
    blobs = [images.png_digit(int(label), i % 10) for i, label in enumerate(labels)]
    outcome = recogniser.recognise_bytes(blobs, 1_000_000)
    right = sum(p.label == str(label) for p, label in zip(outcome.predictions, labels, strict=True))
    assert right / len(labels) >= 0.95
    assert outcome.batch_size == len(labels)


def test_probabilities_are_a_distribution(recogniser):
    (prediction,) = recogniser.recognise_bytes([images.png_digit(8)], 1_000_000).predictions
    assert len(prediction.probabilities) == 10
    assert sum(prediction.probabilities) == pytest.approx(1.0, abs=1e-3)
    assert prediction.confidence == max(prediction.probabilities)


def test_blank_and_broken_images_do_not_disturb_the_batch(recogniser):
    blobs = [images.png_digit(0), images.blank_png(), b"not an image", images.png_digit(6)]
    outcome = recogniser.recognise_bytes(blobs, 1_000_000)
    out = outcome.predictions
    assert outcome.batch_size == 2, "only images with ink reach the model"
    assert out[0].label == "0" and out[3].label == "6"
    assert out[1].label is None and out[1].reason == NO_DIGIT
    assert isinstance(out[2], ImageRejected)


def test_an_image_our_preprocessing_trips_on_fails_alone(recogniser, monkeypatch):
    """A flaw of ours (no known image triggers one, so to_mnist is made to raise for one size)
    fails that image with its reason; the chunk's other images are still answered."""
    from model import recogniser as module

    real = module.to_mnist

    def flawed(img):
        if img.size == (183, 183):  # ink_on_paper adds a 30 px margin
            raise IndexError("index 28 is out of bounds")
        return real(img)

    monkeypatch.setattr(module, "to_mnist", flawed)
    odd = images.encode(images.ink_on_paper(4, size=123))
    out = recogniser.recognise_bytes([images.png_digit(1), odd, images.png_digit(2)], 1_000_000).predictions
    assert out[0].label == "1" and out[2].label == "2"
    assert isinstance(out[1], ImageRejected) and "index 28 is out of bounds" in str(out[1])


def test_the_version_follows_the_weights_and_nothing_else(recogniser, tmp_path):
    """Same bytes, same version, whatever the folder or the file's age; other bytes, another."""
    import os
    import re
    import shutil

    from model.registry import describe

    shipped = recogniser.info
    assert re.fullmatch(r"[0-9a-f]{12}", shipped.version)
    copy = tmp_path / "models" / "copy"
    shutil.copytree(shipped.weights.parent, copy)
    weights = copy / shipped.weights.name
    os.utime(weights, (1, 1))
    assert describe(tmp_path / "models", "copy").version == shipped.version
    weights.write_bytes(weights.read_bytes() + b"\0")
    changed = describe(tmp_path / "models", "copy").version
    assert changed != shipped.version and re.fullmatch(r"[0-9a-f]{12}", changed)


def test_the_cpu_interpreter_gives_keras_own_probabilities(recogniser):
    """On a CPU the model runs in LiteRT's interpreter (model.lite.LiteModel): the
    same probabilities as the Keras model itself, for a lone image, a few, and more than one
    interpreter call takes (in pieces), whatever order the batch sizes come in."""
    import keras
    import numpy as np

    from model.lite import LITE_BATCH, LiteModel
    from model.recogniser import _gpu_visible

    if _gpu_visible():
        pytest.skip("with a GPU the model runs in TensorFlow itself")
    assert isinstance(recogniser._call, LiteModel)
    digits, _ = images.heldout()
    batch = (np.resize(digits, (LITE_BATCH + 44, 28, 28)).astype(np.float32) / 255)[..., None]
    model = keras.models.load_model(recogniser.info.weights, compile=False)
    for size in (1, 7, 1, LITE_BATCH + 44, 7):
        expected = model(batch[:size], training=False).numpy()
        got = recogniser.predict_arrays(batch[:size])
        assert got.shape == (size, 10)
        assert np.abs(got - expected).max() < 1e-5


def test_a_worker_prepares_a_large_jpeg_from_its_scaled_grey_decode():
    """prepare() (what workers and `recog classify` run) asks the decoder for grey at the working
    size: the same input as preprocessing that decode, not the full one's."""
    import numpy as np

    from model.preprocess import WORK_SIDE, to_mnist
    from model.recogniser import prepare
    from shared.decode import open_image

    data = images.encode(images.grey_photo(6, 2), "JPEG", quality=85)
    prepared = prepare(data, 1_000_000)
    assert np.array_equal(prepared, to_mnist(open_image(data, 1_000_000, grey_side=WORK_SIDE)))
    assert not np.array_equal(prepared, to_mnist(open_image(data, 1_000_000)))
