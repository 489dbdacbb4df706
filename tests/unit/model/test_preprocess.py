import io

import numpy as np
from PIL import Image

from model.preprocess import to_grey, to_mnist
from tests import images


def _centre_of_mass(arr):
    ys, xs = np.indices(arr.shape)
    return (ys * arr).sum() / arr.sum(), (xs * arr).sum() / arr.sum()


def test_ink_on_white_paper_becomes_white_on_black_centred():
    out = to_mnist(images.ink_on_paper(7))
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out[0].max() == 0 and out[:, 0].max() == 0  # paper became black
    cy, cx = _centre_of_mass(out)
    assert abs(cy - 14) < 1.5 and abs(cx - 14) < 1.5


def test_digit_fits_twenty_pixel_box():
    out = to_mnist(images.ink_on_paper(1))
    rows = np.flatnonzero(out.max(axis=1) > 0)
    cols = np.flatnonzero(out.max(axis=0) > 0)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 21


def test_off_centre_digit_is_recentred():
    paper = Image.new("L", (400, 300), 255)
    paper.paste(images.ink_on_paper(4, size=80), (300, 200))
    cy, cx = _centre_of_mass(to_mnist(paper))
    assert abs(cy - 14) < 1.5 and abs(cx - 14) < 1.5


def test_transparent_canvas_drawing_reads_as_ink_on_paper():
    ink = np.asarray(images.ink_on_paper(2)) < 128
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
    rgba[ink] = (0, 0, 0, 255)  # black strokes, everything else fully transparent
    drawn = to_mnist(Image.fromarray(rgba, mode="RGBA"))
    plain = to_mnist(images.ink_on_paper(2))
    assert np.abs(drawn - plain).mean() < 0.08


def test_blank_image_has_no_digit():
    assert to_mnist(Image.new("L", (100, 100), 255)) is None
    noisy = np.random.default_rng(0).normal(200, 4, (100, 100)).clip(0, 255).astype(np.uint8)
    assert to_mnist(Image.fromarray(noisy, mode="L")) is None


def test_sixteen_bit_png_is_scaled_not_clipped():
    ink16 = np.asarray(images.ink_on_paper(3), dtype=np.uint16) * 257
    img16 = Image.open(io.BytesIO(images.encode(Image.fromarray(ink16))))
    assert img16.mode.startswith("I")
    assert np.abs(to_mnist(img16) - to_mnist(images.ink_on_paper(3))).mean() < 0.02


def test_a_lone_dot_is_no_digit():
    # Fitted into the 20x20 box a dot would become a fat blob that the model reads as some digit.
    from PIL import ImageDraw

    for diameter in (8, 20, 60):
        canvas = Image.new("RGB", (280, 280), "white")
        ImageDraw.Draw(canvas).ellipse((10, 10, 10 + diameter, 10 + diameter), fill="black")
        assert to_mnist(canvas) is None, diameter


def test_the_blobbiest_digits_are_not_dots():
    for label in range(10):
        assert to_mnist(images.thick_marker(label)) is not None
        assert to_mnist(images.canvas_drawing(label, brush=4)) is not None


def test_the_same_inputs_as_the_scipy_version_it_replaced():
    """bench/seed_preprocess.py keeps the SciPy (float64) version: OpenCV on float32 must give the
    model the same 28x28 inputs, and find no digit in the same images."""
    from bench import seed_preprocess
    from shared.decode import open_image
    from tests.unit.model.test_real_uploads import KINDS

    blobs = [make(d, i) for make in KINDS.values() for d, i in ((3, 1), (8, 4))] + [images.blank_png()]
    for blob in blobs:
        old = seed_preprocess.to_mnist(open_image(blob, 16_000_000))
        new = to_mnist(open_image(blob, 16_000_000))
        assert (old is None) == (new is None)
        if new is not None:
            assert np.abs(old - new).max() < 1e-3


def test_an_opaque_palette_image_reads_as_it_did_through_rgba_over_white_paper():
    """Opaque palette images go straight to grey: the same values as the way transparent ones go."""
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    coloured = Image.fromarray(noise, mode="RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=200)
    for img in (coloured, Image.open(io.BytesIO(images.palette_png(7, 1)))):
        assert img.mode == "P" and "transparency" not in img.info
        paper = Image.new("RGBA", img.size, (255, 255, 255, 255))
        before = np.asarray(Image.alpha_composite(paper, img.convert("RGBA")).convert("L"), dtype=np.float32)
        assert np.array_equal(to_grey(img), before * np.float32(1 / 255))
