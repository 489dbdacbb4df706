"""The fuzz corpus in-process: opening a damaged file either refuses it with ImageRejected or
gives an image the worker's preprocessing can use. Anything else would be a 500 at the gateway
or a failed job with a traceback in the worker."""

import pytest

from model.preprocess import WORK_SIDE, to_mnist
from shared.decode import ImageRejected, open_image
from tests.fuzz import SEED, mutated_files

# Pillow warns about every damaged TIFF tag it skips; the refusals are what is checked.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.parametrize(
    "grey_side", [None, WORK_SIDE], ids=["as the gateway decodes", "as a worker decodes"]
)
def test_every_damaged_file_is_refused_cleanly_or_fully_usable(grey_side):
    accepted = refused = 0
    for _name, data in mutated_files(SEED):
        try:
            img = open_image(data, 16_000_000, grey_side=grey_side)
        except ImageRejected:
            refused += 1
            continue
        to_mnist(img)  # raises for a file the gateway should have refused
        accepted += 1
    assert accepted > 100 and refused > 100, "the corpus should hold both kinds"
