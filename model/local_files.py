"""Recognising files in this process, without any service: what `recog classify` runs.

Decoding and preprocessing cost about five times what the model does per image, and run on one
core at a time, so they run in a pool of processes, a chunk ahead of the model: while the model
reads one chunk, the pool prepares the next. The pool's processes come from a fork server that
imports the preprocessing (numpy, OpenCV, Pillow) and the main script's own imports, never
TensorFlow, whose threads a plain fork of this process would copy mid-flight, and keep the memory
each image frees for the next (model/allocator.py).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from model.allocator import keep_freed_memory
from model.recogniser import Prediction, Recogniser, prepare
from shared.decode import ImageRejected

CHUNK = 256  # files to a model call
PIECE = 32  # files to a task of the pool at most: fewer round trips between processes than one a file
# Under this many files the pool's start (about half a second) costs more than it saves.
POOL_FROM = 2 * CHUNK


def recognise_files(
    recogniser: Recogniser, paths: Sequence[Path], max_pixels: int, processes: int | None = None
) -> Iterator[tuple[Path, Prediction | ImageRejected]]:
    """Each file with its prediction, or with the ImageRejected that says why it has none, in order.
    processes: how many prepare files (default: one a core); 1 prepares them in this process."""
    processes = processes or len(os.sched_getaffinity(0))
    chunks = [paths[start : start + CHUNK] for start in range(0, len(paths), CHUNK)]
    if processes == 1 or len(paths) < POOL_FROM:
        for chunk in chunks:
            outcome = recogniser.recognise_prepared([_prepare_file(p, max_pixels) for p in chunk])
            yield from zip(chunk, outcome.predictions, strict=True)
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["model.preprocess", "shared.decode"])
    with ProcessPoolExecutor(processes, mp_context=context, initializer=keep_freed_memory) as pool:
        piece = min(PIECE, -(-CHUNK // processes))  # a task for each process at least
        ahead = _submit(pool, chunks[0], max_pixels, piece)
        for n, chunk in enumerate(chunks):
            prepared = [digit for future in ahead for digit in future.result()]
            if n + 1 < len(chunks):
                ahead = _submit(pool, chunks[n + 1], max_pixels, piece)
            yield from zip(chunk, recogniser.recognise_prepared(prepared).predictions, strict=True)


def _submit(pool: ProcessPoolExecutor, chunk: Sequence[Path], max_pixels: int, piece: int) -> list[Future]:
    return [
        pool.submit(_prepare_files, chunk[start : start + piece], max_pixels)
        for start in range(0, len(chunk), piece)
    ]


def _prepare_files(paths: Sequence[Path], max_pixels: int) -> list:
    return [_prepare_file(path, max_pixels) for path in paths]


def _prepare_file(path: Path, max_pixels: int):
    try:
        data = path.read_bytes()
    except OSError as exc:
        return ImageRejected(f"the file could not be read: {exc.strerror or exc}")
    return prepare(data, max_pixels)
