"""Turn any upload into an MNIST-style 28x28 digit, the way MNIST itself was made.

Grey, ink made bright on a dark background (inverted when the ink is darker than the paper,
judged from the image), uneven lighting and noise taken out, cropped to the digit, fitted into
20x20 keeping its aspect, centred by centre of mass in 28x28.

Pillow decodes; the shrink is Pillow's BOX filter, computed here; OpenCV does the filtering,
labelling and morphology on float32. The same inputs as SciPy's ndimage on float64 made
(bench/seed_preprocess.py keeps that version; a test compares them). An image costs about 30
NumPy and OpenCV calls on arrays of at most 160x160, so what each call costs beyond its
arithmetic counts: statistics come from partial sorts, the labelling runs on the inked part only,
the morphology on the digit's box. Workers, `recog classify` and training import this; the
gateway has neither numpy nor OpenCV.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from PIL import Image, ImageOps

SIZE = 28
BOX = 20
WORK_SIDE = 160  # larger images are shrunk first: plenty for a digit that ends up 20 px tall
MIN_CONTRAST = 0.12  # ink must differ from the paper by this much (0..1) or the image is blank
MIN_INK_PIXELS = 6
MNIST_STROKE = 2.2  # typical pen width in MNIST's 20x20 box, in pixels
DOT_EXTENT = 2.0  # ink spanning fewer pen widths than this is a dot (1.5-1.7), not a digit (>= 2.2)
OTSU_BINS = 64
OTSU_CENTRES = (np.arange(OTSU_BINS) + 0.5) / OTSU_BINS
CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))  # 4-connected, as binary morphology is
# Single-threaded OpenCV: a worker's pool processes already use every core, and its own threads
# would only fight them (and the model's) for the same two cores.
cv2.setNumThreads(1)


def to_grey(img: Image.Image) -> np.ndarray:
    """Grey in [0, 1] as float32, upright, first frame, transparency shown as white paper."""
    if getattr(img, "is_animated", False):  # probes one frame more; n_frames would parse them all
        img.seek(0)
    # Turns the caller's image upright in place: a copy otherwise, even when already upright.
    ImageOps.exif_transpose(img, in_place=True)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if arr.max() > 255 else 255.0
        return np.clip(arr / top, 0.0, 1.0)
    if img.mode == "P" and "transparency" not in img.info:
        # Opaque: its colours straight to grey, the values RGBA over white paper gave, 3x faster.
        return np.asarray(img.convert("L"), dtype=np.float32) * np.float32(1 / 255)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(paper, rgba)
    return np.asarray(img.convert("L"), dtype=np.float32) * np.float32(1 / 255)


def shrink(grey: np.ndarray) -> np.ndarray:
    """Pillow's BOX filter: each pixel the mean of the whole pixels whose centres fall in its box.
    Computed here, not by Pillow, whose resize of a float image cost 95-250 us an image (a
    quarter of the preprocessing) against 58 here, and not by OpenCV's INTER_AREA, which weighs
    the pixels on a box's edge by their share and read 2 of the benchmark's 10,000 digits wrong."""
    h, w = grey.shape
    scale = WORK_SIDE / max(h, w)
    if scale >= 1:
        return grey
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Across first, then down, as Pillow does.
    return _run_means(_run_means(grey.T, _box_runs(w, size[0])).T, _box_runs(h, size[1]))


@functools.lru_cache(maxsize=64)
def _box_runs(size_in: int, size_out: int) -> tuple[np.ndarray, list, np.ndarray]:
    """Where each output pixel's run of input pixels starts, the steps that add them up (every
    run's j-th pixel, or only the longer runs'), and 1 / each run's length, as Pillow's
    precompute_coeffs (Resample.c) weighs a BOX shrink: the pixels whose centres fall in a box
    at least a pixel wide, so a run is never empty, and always whole pixels in a row."""
    scale = size_in / size_out
    support = 0.5 * scale
    starts, lengths = [], []
    for out in range(size_out):
        centre = (out + 0.5) * scale
        first, end = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), size_in)
        inside = [x for x in range(first, end) if -0.5 < (x - centre + 0.5) / scale <= 0.5]
        starts.append(inside[0])
        lengths.append(len(inside))
    starts, lengths = np.array(starts), np.array(lengths)
    steps = [(j, None if j < lengths.min() else np.flatnonzero(lengths > j)) for j in range(lengths.max())]
    inverse = (1 / lengths).astype(np.float32)[:, None]
    for shared in (starts, inverse, *(longer for _, longer in steps if longer is not None)):
        shared.setflags(write=False)  # cached: every image of these sizes gets the same arrays
    return starts, steps, inverse


def _run_means(rows: np.ndarray, runs: tuple[np.ndarray, list, np.ndarray]) -> np.ndarray:
    """The mean of each run of rows: a few row gathers, not a loop over the output."""
    starts, steps, inverse = runs
    total = rows[starts]  # a copy: fancy indexing
    for j, longer in steps[1:]:
        if longer is None:
            total += rows[starts + j]
        else:
            total[longer] += rows[starts[longer] + j]
    total *= inverse
    return total


def ink_map(grey: np.ndarray) -> np.ndarray | None:
    """Ink as bright-on-dark in [0, 1] with the paper flattened to 0; None when there is no ink."""
    sample = grey[::2, ::2]  # statistics from a quarter of the pixels: same answer, 4x less work
    low, paper, high = _percentiles(sample, (0.5, 50, 99.5))
    ink = paper - grey if paper - low >= high - paper else grey - paper
    ink = ink - _background_plane(ink)
    if max(grey.shape) > 64:  # photos and scans: soften sensor noise; MNIST-sized input is clean
        ink = _gaussian(ink, max(grey.shape) / WORK_SIDE)
    # The peak is the strongest ink, not a percentile: a fine pen covers well under 1 % of a page.
    (floor,), peak = _percentiles(ink[::2, ::2], (50,)), float(ink.max())
    if peak - floor < MIN_CONTRAST:
        return None
    return np.clip((ink - floor) * np.float32(1 / (peak - floor)), 0.0, 1.0)


def digit_mask(ink: np.ndarray) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    """The pixels of the digit (Otsu's threshold, then specks and frame edges dropped) within its
    box: the part of the image that holds them and a margin of 3 pixels, wider than the 2-pixel
    dilation, so that the morphology after this runs on the digit's box, not the whole image."""
    mask = (ink > max(_otsu(ink), 0.25)).view(np.uint8)
    # Components are only looked for where there is ink at all: on clean paper a fraction of the
    # image, and their statistics cost more than the labelling itself.
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0:
        return None
    # 16-bit labels: 2.5x faster than 32-bit here. At most WORK_SIDE x WORK_SIDE / 4 components
    # (6,400), under 65,536 while WORK_SIDE stays under 512.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask[y : y + h, x : x + w], connectivity=8, ltype=cv2.CV_16U
    )
    stats = stats[1:, :5] + np.array([x, y, 0, 0, 0])  # label 0 is the background
    areas = stats[:, cv2.CC_STAT_AREA]
    edge_like = _edge_like(stats, ink.shape)
    if edge_like.all():
        edge_like[:] = False
    big = (areas >= 0.1 * areas[~edge_like].max()) & ~edge_like
    if areas[big].sum() < MIN_INK_PIXELS:
        return None
    left, top = stats[big, 0].min(), stats[big, 1].min()
    right, bottom = (stats[big, 0] + stats[big, 2]).max(), (stats[big, 1] + stats[big, 3]).max()
    r0, c0 = max(top - 3, 0), max(left - 3, 0)
    box = np.s_[r0 : min(bottom + 3, ink.shape[0]), c0 : min(right + 3, ink.shape[1])]
    inside = labels[top - y : bottom - y, left - x : right - x]
    digit = np.zeros((box[0].stop - r0, box[1].stop - c0), dtype=bool)
    if np.count_nonzero(big) == 1:  # one comparison instead of a lookup per pixel
        kept = inside == np.flatnonzero(big)[0] + 1
    else:
        kept = np.concatenate(([False], big))[inside]
    digit[top - r0 : bottom - r0, left - c0 : right - c0] = kept
    return digit, box


def fit_to_mnist(
    ink: np.ndarray, mask: np.ndarray, width: float, spans: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Crop to the digit, even out the pen width, fit in 20x20, centre by mass in 28x28.
    spans: _spans(mask)."""
    rows, cols = spans
    pad = 1
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, ink.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, ink.shape[1])
    near = cv2.dilate(mask.view(np.uint8), CROSS, iterations=2)[r0:r1, c0:c1].view(bool)
    crop = np.where(near, ink[r0:r1, c0:c1], np.float32(0))
    crop = _even_stroke(crop, width, BOX / max(crop.shape))
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    small = Image.fromarray(crop, mode="F").resize((new_w, new_h), method)
    small = np.clip(np.asarray(small, dtype=np.float32), 0.0, None)
    small /= max(float(small.max()), 1e-6)
    cy, cx = _centre_of_mass(small)
    top = min(max(int(round(SIZE / 2 - cy - 0.5)), 0), SIZE - new_h)
    left = min(max(int(round(SIZE / 2 - cx - 0.5)), 0), SIZE - new_w)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + new_h, left : left + new_w] = small
    return out


def to_mnist(img: Image.Image) -> np.ndarray | None:
    """The model's input for one image (28x28 float32 in [0, 1]), or None when there is no digit."""
    ink = ink_map(shrink(to_grey(img)))
    if ink is None:
        return None
    found = digit_mask(ink)
    if found is None:
        return None
    mask, box = found
    width, spans = _stroke_width(mask), _spans(mask)
    if _only_a_dot(spans, width):
        return None
    return fit_to_mnist(ink[box], mask, width, spans)


def _background_plane(ink: np.ndarray) -> np.ndarray:
    """A plane fitted to the paper (the darker 60 % of the ink map): uneven lighting, removed."""
    h, w = ink.shape
    step = max(1, min(h, w) // 32)  # a plane needs few points: fit on a grid of about 32x32
    grid = ink[::step, ::step]
    ys, xs = np.nonzero(grid <= _percentiles(grid, (60,))[0])
    design = np.empty((len(ys), 3))
    design[:, 0], design[:, 1], design[:, 2] = ys * step, xs * step, 1.0
    paper = grid[ys, xs].astype(np.float64)
    try:  # least squares by its normal equations: 3x3, a third of lstsq's time
        coef = np.linalg.solve(design.T @ design, design.T @ paper)
    except np.linalg.LinAlgError:  # the paper all in one row or column: the least-norm plane
        coef, *_ = np.linalg.lstsq(design, paper, rcond=None)
    rows = np.arange(h, dtype=np.float32)[:, None] * np.float32(coef[0])
    cols = np.arange(w, dtype=np.float32)[None, :] * np.float32(coef[1])
    return rows + (cols + np.float32(coef[2]))


def _percentiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """np.percentile's (linear interpolation) from one partial sort: its general machinery costs
    more than the sort on a few thousand values."""
    flat = values.ravel()
    last = flat.size - 1
    at = [q / 100 * last for q in qs]
    part = np.partition(flat, sorted({int(a) for a in at} | {min(int(a) + 1, last) for a in at}))
    found = []
    for a in at:
        below, above = float(part[int(a)]), float(part[min(int(a) + 1, last)])
        found.append(below + (above - below) * (a - int(a)))
    return found


def _gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    """SciPy's gaussian_filter: a kernel 4 sigma each side, edges mirrored (abc|cba)."""
    side = 2 * int(4.0 * sigma + 0.5) + 1
    return cv2.GaussianBlur(img, (side, side), sigma, sigma, borderType=cv2.BORDER_REFLECT)


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold over OTSU_BINS bins of [0, 1] (1 itself in the last)."""
    # OpenCV counts 8-bit values into bins several times faster than np.bincount counts integers.
    scaled = (values * OTSU_BINS).astype(np.uint8)
    hist = cv2.calcHist([scaled], [0], None, [OTSU_BINS + 1], [0, OTSU_BINS + 1]).ravel().astype(np.float64)
    hist[-2] += hist[-1]
    weight = np.cumsum(hist[:-1])
    mean = np.cumsum(hist[:-1] * OTSU_CENTRES)
    total, overall = weight[-1], mean[-1]
    weight, mean = weight[:-1], mean[:-1]
    spread = weight * (total - weight)
    between = np.divide(
        (overall * weight - mean * total) ** 2, spread, out=np.full(OTSU_BINS - 1, -np.inf), where=spread > 0
    )
    return float(OTSU_CENTRES[np.argmax(between)])


def _edge_like(stats: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Which components are a table edge or paper border: touching a side of the image along
    more than half of it."""
    h, w = shape
    left, top, width, height = (stats[:, i] for i in range(4))
    horizontal = ((top == 0) | (top + height == h)) & (width > w / 2)
    vertical = ((left == 0) | (left + width == w)) & (height > h / 2)
    return horizontal | vertical


def _spans(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows and the columns that hold ink."""
    return np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))


def _centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    total = float(img.sum())
    rows = float(img.sum(axis=1) @ np.arange(img.shape[0], dtype=np.float32))
    cols = float(img.sum(axis=0) @ np.arange(img.shape[1], dtype=np.float32))
    return rows / total, cols / total


def _only_a_dot(spans: tuple[np.ndarray, np.ndarray], width: float) -> bool:
    """A dot or a blob no longer than a few pen widths: fitting it to 20x20 would make it a digit.

    Measured as extent / (2 x area / outline): round dots of any size give 1.5-1.7, the blobbiest
    digits of the upload kinds (a fat-marker 8) 2.2 and up, so 2.0 parts them.
    """
    rows, cols = spans  # of the mask
    extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    return extent < DOT_EXTENT * width


def _stroke_width(mask: np.ndarray) -> float:
    """2 x area / outline; pixels outside the image count as paper, so the frame's are outline."""
    inner = cv2.erode(mask.view(np.uint8), CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    area = np.count_nonzero(mask)
    return 2.0 * area / max(area - np.count_nonzero(inner), 1)


def _even_stroke(crop: np.ndarray, width: float, scale: float) -> np.ndarray:
    """Thicken a hair-thin pen (a fine canvas brush on a big canvas) to MNIST's width after scaling."""
    target = MNIST_STROKE / scale
    grow = int(round((target - width) / 2))
    if width >= 0.6 * target or grow < 1:
        return crop
    return cv2.dilate(crop, _disk(grow))


@functools.cache  # a handful of radii, the same for every image of a size
def _disk(radius: int) -> np.ndarray:
    ys, xs = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = (ys**2 + xs**2 <= radius**2 + radius).astype(np.uint8)
    disk.setflags(write=False)  # cached: shared by every image
    return disk
