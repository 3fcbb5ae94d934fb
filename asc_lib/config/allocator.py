"""The C allocator tuned for the study's large tensors (glibc only).

glibc serves every allocation above its mmap threshold (at most 32 MiB once it has adapted) with a fresh
``mmap`` and returns it with ``munmap`` on free, so a batch of 256 one-second clips through the baseline's
4096-point STFT (a 270 MB spectrogram) is paged in and zeroed by the kernel on every batch. Measured on
the study's 2-core CPU: evaluating CP-Mobile on 900 clips took 10.6 s, 6.4 s of it in the kernel, and
4.1 s with big blocks kept in the heap. :func:`tune` raises the mmap threshold to 1 GiB and lets the heap
keep up to 1 GiB of freed memory before trimming it; it runs once when ``asc_lib`` is imported. Set
``ASC_TUNE_MALLOC=0`` to keep glibc's defaults; nothing happens on other C libraries.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3    # mallopt parameters of glibc's <malloc.h>
MMAP_THRESHOLD = 1 << 30                       # blocks below 1 GiB come from the heap
TRIM_THRESHOLD = 1 << 30                       # the heap keeps up to 1 GiB of freed memory

_tuned: bool | None = None


def tune() -> bool:
    """Apply the settings above once per process; True if glibc accepted them."""
    global _tuned
    if _tuned is None:
        _tuned = False
        if os.environ.get("ASC_TUNE_MALLOC", "1") != "0":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):     # not glibc (macOS, musl without mallopt, Windows)
                return False
            _tuned = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned
