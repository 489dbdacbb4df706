"""The training digits: taken from the npm package, distinct, with a held-out split that
never changes (so an accuracy quoted today is comparable with one quoted next month)."""

import hashlib

import numpy as np
import pytest

from model import mnist_data
from shared.settings import STATE_DIR

CACHE = STATE_DIR / "cache" / "training"  # where `recog train` keeps the package archive


@pytest.fixture(scope="module")
def digits():
    return mnist_data.load(CACHE)


def test_the_package_gives_ten_thousand_digits_of_every_class(digits):
    images, labels = digits
    assert images.dtype == np.uint8 and images.shape == (10_000, 28, 28) and len(labels) == 10_000
    assert np.bincount(labels).min() > 800, "a class is nearly missing"
    assert images.max() == 255 and images.min() == 0


def test_no_digit_appears_twice(digits):
    """A digit twice could sit in training and held-out at once and flatter the accuracy. Near
    copies count: two digits identical once quantised to 32 grey levels."""
    images, _ = digits
    keys = {hashlib.blake2b((img // 8).tobytes(), digest_size=16).digest() for img in images}
    assert len(keys) == len(images)


def test_the_held_out_split_is_fixed_and_apart_from_training(digits):
    n = len(digits[0])
    train, held = mnist_data.split(n)
    assert len(held) == mnist_data.HELD_OUT and len(train) == n - mnist_data.HELD_OUT
    assert not set(train.tolist()) & set(held.tolist())
    assert np.array_equal(held, mnist_data.split(n)[1])
    assert not np.array_equal(held, mnist_data.split(n, seed=mnist_data.SPLIT_SEED + 1)[1])
