"""Training's augmentation: repeatable from its seed, images stay images, digits stay digits."""

import numpy as np
import pytest

from model.augment import augment_batch
from model.recogniser import Recogniser
from shared.settings import Settings
from tests import images


@pytest.fixture(scope="module")
def digits():
    pictures, labels = images.heldout()
    pictures = pictures.astype(np.float32)
    return (pictures / 255.0 if pictures.max() > 1 else pictures), labels


def test_the_same_seed_gives_the_same_batch_and_another_seed_another(digits):
    pictures, _ = digits
    first = augment_batch(pictures[:20], np.random.default_rng(7))
    assert np.array_equal(first, augment_batch(pictures[:20], np.random.default_rng(7)))
    assert not np.array_equal(first, augment_batch(pictures[:20], np.random.default_rng(8)))


def test_images_keep_their_shape_type_and_range_and_change(digits):
    pictures, _ = digits
    out = augment_batch(pictures, np.random.default_rng(1))
    assert out.shape == pictures.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - pictures).mean() > 0.01, "augmentation left the digits as they were"


def test_the_model_still_reads_augmented_digits(digits):
    """Distortions that changed what a digit is would teach the model wrong labels."""
    pictures, labels = digits
    model = Recogniser(Settings.from_env({}).models_dir, "digits")
    out = augment_batch(pictures, np.random.default_rng(2))
    predicted = model.predict_arrays(out[..., None]).argmax(axis=1)
    assert np.mean(predicted.astype(str) == labels.astype(str)) >= 0.9
