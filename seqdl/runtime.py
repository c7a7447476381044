"""Process-wide settings that make NumPy training fast: the allocator.

NumPy gets every large array from ``malloc``, which by default serves big blocks
with ``mmap`` and returns them to the kernel on ``free``. A training step
allocates and frees the same ~100 MB of activations every time, so each step
pays for the kernel zero-filling fresh pages: a third of the letters CNN's step
time. :func:`keep_freed_memory` asks glibc to serve large blocks from the heap
and keep freed memory for reuse (as PyTorch's caching allocators do). It is
called by the ``seqdl`` command and the benchmarks; library users may call it
once at start-up. Resident memory then stays at its peak until exit.

It also keeps all threads on one malloc arena. glibc gives each thread its own,
and memory freed in one arena is not reused by another: the scan's worker threads
each held their own peak of freed blocks (about 100 MB more resident memory on a
full bacterial genome, measured). NumPy allocates per array, not per element, so
the shared arena's lock cost the scan nothing measurable.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_applied = False


def keep_freed_memory(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 31) -> bool:
    """Tune glibc's malloc for repeated large allocations; returns whether it took effect.

    A no-op (returning False) on other C libraries, or when the environment
    variable ``SEQDL_KEEP_FREED_MEMORY=0`` asks not to (memory measurements).
    """
    global _applied
    if _applied:
        return True
    if os.environ.get("SEQDL_KEEP_FREED_MEMORY", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = all(mallopt(option, value) for option, value in
                   ((_M_MMAP_THRESHOLD, mmap_threshold), (_M_TRIM_THRESHOLD, trim_threshold), (_M_ARENA_MAX, 1)))
    return _applied
