"""Max-pooling's backward, compiled by numba: each window's gradient to its first maximum, in one pass.

In NumPy it is half a dozen array operations per kernel offset over strided views whose rows
are a dozen elements long (each with a temporary), and it cost a fifth of a letters-CNN
training step; here every input element is visited once. The windows are walked as the forward
walks them, one kernel offset (ky, kx) at a time, so padding and ``ceil_mode``'s overhanging
windows are just shorter ranges. The "first" maximum is PyTorch's choice among ties (frequent:
a blank region of an image pools equal values); a NaN is a window's maximum, as in PyTorch.
The arithmetic avoids branches on the data, which are unpredictable here.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel


@kernel(fastmath=False)  # it must see NaNs
def max_pool_backward(x, best, g, kh, kw, sh, sw, ph, pw, dx):  # noqa: ANN001, ANN201
    """Add each window's gradient ``g`` to the input element that is the window's first maximum.

    ``x``, ``dx`` (planes, H, W): the input and its gradient (zeros in); ``best``, ``g`` (planes, oh, ow):
    the pooled output and its gradient; kernel (kh, kw), stride (sh, sw), padding (ph, pw)."""
    planes, height, width = x.shape
    out_h, out_w = best.shape[1:]
    unclaimed = np.empty((out_h, out_w), x.dtype)  # 1 until a window's maximum has been found
    for m in range(planes):
        unclaimed[:] = 1
        for ky in range(kh):
            i_lo, i_hi = max(0, -((ky - ph) // sh)), min(out_h, (height - 1 + ph - ky) // sh + 1)
            for kx in range(kw):
                j_lo, j_hi = max(0, -((kx - pw) // sw)), min(out_w, (width - 1 + pw - kx) // sw + 1)
                for i in range(i_lo, i_hi):
                    y = i * sh + ky - ph
                    for j in range(j_lo, j_hi):
                        v = x[m, y, j * sw + kx - pw]
                        hit = ((v == best[m, i, j]) | (v != v)) * unclaimed[i, j]
                        dx[m, y, j * sw + kx - pw] += g[m, i, j] * hit
                        unclaimed[i, j] -= hit
