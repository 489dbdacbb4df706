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
    # A table edge along the bottom, specks, and the digit cut in two: the edge and the specks
    # (under a tenth of the largest component) dropped, both halves kept.
    page = np.asarray(images.ink_on_paper(5, 2, size=240)).copy()
    page[-8:, :] = 20
    page[118:123, :200] = 255
    page[10:17, 10:17] = page[200:206, 30:36] = page[40:46, 215:221] = 0
    blobs.append(images.encode(Image.fromarray(page)))
    # A digit touching the image's top and left edges.
    paper = np.asarray(images.ink_on_paper(3, 1, size=240))
    ys, xs = np.nonzero(paper < 128)
    blobs.append(images.encode(Image.fromarray(paper[ys.min() :, xs.min() :])))
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


def test_percentiles_from_a_partial_sort_are_numpys():
    from model.preprocess import _percentiles

    rng = np.random.default_rng(2)
    for shape in ((1, 1), (1, 50), (7, 3), (80, 80)):
        values = rng.random(shape, dtype=np.float32)
        qs = (0.5, 50, 60, 99.5)
        assert np.allclose(_percentiles(values, qs), np.percentile(values, qs), rtol=0, atol=1e-7)


def test_the_paper_plane_by_normal_equations_is_the_least_squares_plane():
    """Solved as a 3x3 system instead of by lstsq, with lstsq kept for a grid whose paper is all
    in one row or column (a singular system)."""
    from model.preprocess import _background_plane

    rng = np.random.default_rng(3)
    for shape in ((1, 50), (50, 1), (2, 2), (28, 28), (160, 120)):
        ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
        ink = (0.002 * ys - 0.001 * xs + 0.3 + 0.05 * rng.random(shape)).astype(np.float32)
        step = max(1, min(shape) // 32)
        grid = ink[::step, ::step]
        paper = grid <= np.percentile(grid, 60)
        design = np.column_stack([ys[::step, ::step][paper], xs[::step, ::step][paper], np.ones(paper.sum())])
        coef, *_ = np.linalg.lstsq(design, grid[paper].astype(np.float64), rcond=None)
        expected = ys * coef[0] + xs * coef[1] + coef[2]
        assert np.abs(_background_plane(ink) - expected).max() < 1e-5, shape


def test_shrinking_is_pillows_box_filter():
    """Its own runs of whole pixels, as Pillow weighs a BOX shrink: Pillow's own figures, to float
    rounding, at sizes that make runs of every length, skip pixels and share them."""
    from model.preprocess import WORK_SIDE, shrink

    rng = np.random.default_rng(4)
    sizes = ((260, 260), (300, 400), (259, 168), (333, 20), (161, 160), (1, 700), (3000, 4000), (2000, 37))
    for h, w in sizes:
        grey = rng.random((h, w), dtype=np.float32)
        scale = WORK_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        pillow = np.asarray(Image.fromarray(grey, mode="F").resize(size, Image.Resampling.BOX))
        assert np.abs(shrink(grey) - pillow).max() < 5e-7, (h, w)
