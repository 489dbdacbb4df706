"""Test images made on the fly: held-out MNIST digits rendered as people send them, and broken files."""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

FIXTURES = Path(__file__).parent / "fixtures"


_source: tuple[np.ndarray, np.ndarray] | None = None


@cache
def heldout() -> tuple[np.ndarray, np.ndarray]:
    """100 digits (10 a class) from the held-out split that training never saw, unless the
    benchmark chose a larger set with use_digits()."""
    if _source is not None:
        return _source
    data = np.load(FIXTURES / "heldout_digits.npz")
    return data["images"], data["labels"]


def use_digits(images: np.ndarray, labels: np.ndarray) -> None:
    """Render from these digits instead of the fixtures (the benchmark uses all 2,000 held out)."""
    global _source
    _source = (images, labels)
    heldout.cache_clear()


def digit(label: int, index: int = 0) -> np.ndarray:
    images, labels = heldout()
    return images[np.flatnonzero(labels == label)[index]]


def ink_on_paper(label: int, index: int = 0, size: int = 200) -> Image.Image:
    """Black ink on white paper, larger than MNIST, with a margin."""
    ink = Image.fromarray(255 - digit(label, index), mode="L").resize((size, size), Image.Resampling.BICUBIC)
    paper = Image.new("L", (size + 60, size + 60), 255)
    paper.paste(ink, (30, 30))
    return paper


def encode(img: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def png_digit(label: int, index: int = 0) -> bytes:
    return encode(ink_on_paper(label, index))


def fresh_png_digit(label: int, index: int = 0, size: int = 200, mark: str | None = None) -> bytes:
    """The pixels of png_digit (drawn size pixels wide), in bytes no upload ever had (a random
    text chunk), so the worker recognises it instead of recalling an earlier result for the same
    bytes. mark: one more text key, for tests/poisoned_worker.py to find."""
    info = PngImagePlugin.PngInfo()
    info.add_text("nonce", uuid.uuid4().hex)
    if mark:
        info.add_text(mark, "1")
    return encode(ink_on_paper(label, index, size), pnginfo=info)


def blank_png(size: int = 120) -> bytes:
    return encode(Image.new("L", (size, size), 255))


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def jpeg_cut_in_its_headers() -> bytes:
    """Pillow's Image.open itself raises OSError on this, before any pixel is read."""
    return encode(Image.new("L", (64, 64), 200), "JPEG")[:40]


def png_with_text_bomb() -> bytes:
    """A zTXt chunk that inflates past Pillow's text limit: Image.open raises ValueError."""
    text = b"Comment\x00\x00" + zlib.compress(b"\0" * (2 * 1024 * 1024))
    chunk = struct.pack(">I", len(text)) + b"zTXt" + text + struct.pack(">I", zlib.crc32(b"zTXt" + text))
    data = png_digit(3)
    return data[:33] + chunk + data[33:]  # after the signature (8 bytes) and IHDR (25)


def huge_blank_png(width: int, height: int) -> bytes:
    """A small file that decodes to width x height pixels: the shape of a decompression bomb."""
    return encode(Image.new("1", (width, height), 1), optimize=True)


def _mask(label: int, index: int, size: int) -> np.ndarray:
    """The digit's pen strokes as a boolean mask, size x size."""
    up = Image.fromarray(digit(label, index), mode="L").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(up) > 127


def grey_photo(label: int, index: int = 0, seed: int = 0) -> Image.Image:
    """A phone photo: grey paper under uneven light, sensor noise, soft focus, dark grey ink, RGB."""
    from scipy import ndimage

    rng = np.random.default_rng(seed + 100 * label + index)
    h, w = 300, 400
    ys, xs = np.mgrid[0:h, 0:w]
    light = rng.uniform(0.5, 0.7) + 0.15 * (xs / w) - 0.1 * (ys / h)
    ink = np.zeros((h, w))
    ink[50:250, 100:300] = ndimage.gaussian_filter(_mask(label, index, 200).astype(float), 1.5)
    grey = light - ink * rng.uniform(0.3, 0.45) + rng.normal(0, 0.03, (h, w))
    rgb = np.stack([grey * 1.02, grey, grey * 0.95], axis=-1)
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8), mode="RGB")


def canvas_drawing(label: int, index: int = 0, brush: int = 0) -> Image.Image:
    """A browser canvas export: black strokes on a fully transparent 280x280 RGBA canvas."""
    from scipy import ndimage

    mask = _mask(label, index, 200)
    if brush > 0:
        mask = ndimage.binary_dilation(mask, iterations=brush)
    elif brush < 0:
        mask = ndimage.binary_erosion(mask, iterations=-brush)
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[40:240, 40:240, 3] = mask * 255
    return Image.fromarray(rgba, mode="RGBA")


def thin_pen(label: int, index: int = 0) -> Image.Image:
    """A fine pen on a large white page: the digit's skeleton, about 3 px wide on 600x600."""
    from scipy import ndimage

    line = ndimage.binary_dilation(_skeleton(_mask(label, index, 400)))
    page = np.full((600, 600), 255, dtype=np.uint8)
    page[100:500, 100:500][line] = 20
    return Image.fromarray(page, mode="L")


def _skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: peel boundary pixels that do not break the stroke, until none are left."""
    img = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = [
                np.roll(np.roll(img, -dy, 0), -dx, 1)
                for dy, dx in ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
            ]
            neighbours = sum(p)
            transitions = sum(((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(int) for i in range(8))
            if step == 0:
                gate = (p[0] * p[2] * p[4] == 0) & (p[2] * p[4] * p[6] == 0)
            else:
                gate = (p[0] * p[2] * p[6] == 0) & (p[0] * p[4] * p[6] == 0)
            peel = (img == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & gate
            if peel.any():
                img[peel] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


def thick_marker(label: int, index: int = 0) -> Image.Image:
    from scipy import ndimage

    mask = ndimage.binary_dilation(_mask(label, index, 200), iterations=8)
    page = np.full((280, 280), 250, dtype=np.uint8)
    page[40:240, 40:240][mask] = 10
    return Image.fromarray(page, mode="L")


def off_centre(label: int, index: int = 0) -> Image.Image:
    page = Image.new("L", (640, 480), 255)
    page.paste(ink_on_paper(label, index, size=90), (480, 320))
    return page


def exif_rotated_jpeg(label: int, index: int = 0) -> bytes:
    """Pixels stored sideways with EXIF orientation 6, as phones save them."""
    upright = ink_on_paper(label, index).convert("RGB")
    stored = upright.rotate(90, expand=True)  # orientation 6 means: rotate 90 clockwise to view
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, "JPEG", exif=exif, quality=90)


def palette_png(label: int, index: int = 0) -> bytes:
    return encode(
        ink_on_paper(label, index).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    )


def sixteen_bit_png(label: int, index: int = 0) -> bytes:
    return encode(Image.fromarray(np.asarray(ink_on_paper(label, index), dtype=np.uint16) * 257))


def cmyk_jpeg(label: int, index: int = 0) -> bytes:
    return encode(ink_on_paper(label, index).convert("CMYK"), "JPEG", quality=92)


def animated(label: int, index: int = 0, fmt: str = "GIF") -> bytes:
    """First frame the digit, later frames something else: only frame 0 counts."""
    first = ink_on_paper(label, index).convert("RGB")
    other = ink_on_paper((label + 1) % 10, index).convert("RGB")
    return encode(first, fmt, save_all=True, append_images=[other, other], duration=100, loop=0)
