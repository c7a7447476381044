"""How seqdl compiles its few numba kernels (the recurrent gates, max-pooling's backward, batch normalisation).

numba is imported by the first layer that needs a kernel, not by every command: it costs about
a second of start-up and 100 MB of resident memory (LLVM).
"""
from __future__ import annotations

from typing import Callable

import numba


def kernel(fn: Callable | None = None, *, fastmath: bool | set[str] = True) -> Callable:
    """``fn`` compiled (``@kernel`` or ``@kernel(fastmath=False)``), and cached on disk beside its module (or in
    the user's cache) where one is writable.

    The kernels release the GIL, so worker threads run them side by side; ``error_model="numpy"`` lets
    the compiler vectorise divisions (no ZeroDivisionError checks). ``fastmath`` lets it reorder and
    contract arithmetic, and assume there are no NaNs: a kernel that must see NaNs turns it off, or names the
    LLVM flags it allows (numba's set form, e.g. ``{"reassoc", "contract"}``).
    """
    if fn is None:
        return lambda f: kernel(f, fastmath=fastmath)
    options = {"fastmath": fastmath, "error_model": "numpy", "nogil": True}
    try:
        return numba.njit(cache=True, **options)(fn)
    except RuntimeError:  # no writable cache location (a read-only install, no home): compile on every run
        return numba.njit(**options)(fn)
