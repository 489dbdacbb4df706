"""Turn any upload into an MNIST-style 28x28 digit, the way MNIST itself was made.

NumPy and Pillow only: the gateway and `recog classify` import this without TensorFlow.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

SIZE = 28
BOX = 20
# Ink must stand this far (0..1) above the paper to count; below it an image is blank.
INK_THRESHOLD = 0.25
MIN_INK_PIXELS = 6


def to_grey(img: Image.Image) -> np.ndarray:
    """Grey in [0, 1], upright, first frame, transparency shown as white paper."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        return np.clip(arr / top, 0.0, 1.0)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(paper, rgba)
    return np.asarray(img.convert("L"), dtype=np.float64) / 255.0


def ink_map(grey: np.ndarray) -> np.ndarray:
    """Ink as bright-on-dark in [0, 1], with the paper (light or dark, judged by the border) at 0."""
    border = np.concatenate([grey[0, :], grey[-1, :], grey[:, 0], grey[:, -1]])
    paper = float(np.median(border))
    ink = grey - paper if paper < 0.5 else paper - grey
    ink = np.clip(ink, 0.0, None)
    peak = float(np.percentile(ink, 99.9))
    if peak <= INK_THRESHOLD:
        return np.zeros_like(ink)
    ink = np.clip(ink / peak, 0.0, 1.0)
    ink[ink < INK_THRESHOLD] = 0.0
    return ink


def fit_to_mnist(ink: np.ndarray) -> np.ndarray | None:
    """Crop to the ink, fit in 20x20 keeping aspect, centre by mass in 28x28; None if no ink."""
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    cols = np.flatnonzero(ink.max(axis=0) > 0)
    if np.count_nonzero(ink) < MIN_INK_PIXELS:
        return None
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = Image.fromarray(crop.astype(np.float32), mode="F").resize(
        (new_w, new_h), Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR
    )
    small = np.clip(np.asarray(resized, dtype=np.float64), 0.0, 1.0)
    out = np.zeros((SIZE, SIZE), dtype=np.float64)
    cy, cx = _centre_of_mass(small)
    top = int(round(SIZE / 2 - cy))
    left = int(round(SIZE / 2 - cx))
    top = min(max(top, 0), SIZE - new_h)
    left = min(max(left, 0), SIZE - new_w)
    out[top : top + new_h, left : left + new_w] = small
    return out.astype(np.float32)


def to_mnist(img: Image.Image) -> np.ndarray | None:
    """The model's input for one image (28x28 float32 in [0, 1]), or None when there is no digit."""
    return fit_to_mnist(ink_map(to_grey(img)))


def _centre_of_mass(arr: np.ndarray) -> tuple[float, float]:
    total = arr.sum()
    ys, xs = np.indices(arr.shape)
    return float((ys * arr).sum() / total), float((xs * arr).sum() / total)
