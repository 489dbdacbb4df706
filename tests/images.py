"""Test images made on the fly: held-out MNIST digits rendered as people send them, and broken files."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"


@cache
def heldout() -> tuple[np.ndarray, np.ndarray]:
    """100 digits (10 a class) from the held-out split that training never saw."""
    data = np.load(FIXTURES / "heldout_digits.npz")
    return data["images"], data["labels"]


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


def blank_png(size: int = 120) -> bytes:
    return encode(Image.new("L", (size, size), 255))


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def huge_blank_png(width: int, height: int) -> bytes:
    """A small file that decodes to width x height pixels: the shape of a decompression bomb."""
    return encode(Image.new("1", (width, height), 1), optimize=True)
