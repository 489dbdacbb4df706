"""Keep freed memory in the process, so that each image's arrays reuse pages instead of faulting
fresh ones in.

Preprocessing makes a dozen arrays of 50-300 kB an image and frees them. With glibc's default
thresholds, malloc hands much of that back to the kernel (an mmap of its own for the larger
blocks, a trim of the heap's top for the rest), so the next image faults the same pages in
again: about 90 page faults an image, 20 % of what preparing one costs on this kind of virtual
machine, where a fault costs 2-3 us (bench/classify_speed.py). No library sets these two
thresholds, so it is done here, through glibc's own mallopt().
"""

from __future__ import annotations

import ctypes

# mallopt()'s parameter numbers, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap and are reused: every array of an image shrunk to
# model/preprocess.py's WORK_SIDE, and the decoded grey of images up to about 1,400x1,400. A
# larger block still gets an mmap of its own, so a huge image's memory goes back when it is done.
MMAP_THRESHOLD = 8 << 20
# Freed memory at the heap's top kept for the next image, at most: bounds what this adds to a
# process's resident memory.
TRIM_THRESHOLD = 32 << 20


def keep_freed_memory() -> bool:
    """True where glibc took both settings; elsewhere (musl, macOS) nothing changes."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
