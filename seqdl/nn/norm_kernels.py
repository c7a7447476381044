"""Batch normalisation in training, compiled by numba: each channel's statistics and outputs in a few passes.

In NumPy a BatchNorm2d training step is a dozen array operations, reductions over axes (0, 2, 3)
that do not vectorise and temporaries for every intermediate; in the letters CNN it was a
quarter of the step. Here each channel is one loop nest: its mean, then its variance (two passes,
as the direct formula loses precision), then the outputs; backward is two passes. Input is
(N, C, S) with S the positions of one channel in one item (1 for BatchNorm1d).
"""
from __future__ import annotations

import math

from .jit import kernel

# Reassociating sums lets them vectorise; NaNs must still propagate (no "nnan").
_FAST = {"reassoc", "contract", "nsz", "arcp"}


@kernel(fastmath=_FAST)
def batch_norm_forward(x, weight, bias, eps, out, x_hat, mean, var, inv_std):  # noqa: ANN001, ANN201
    """``x`` (N, C, S) -> ``out`` = ``x_hat`` * weight + bias, ``x_hat`` = (x - mean) * inv_std, with the batch's
    per-channel ``mean`` and biased ``var`` (C,) written too."""
    items, channels, positions = x.shape
    count = items * positions
    for c in range(channels):
        total = 0.0
        for n in range(items):
            for s in range(positions):
                total += x[n, c, s]
        m = total / count
        squares = 0.0
        for n in range(items):
            for s in range(positions):
                d = x[n, c, s] - m
                squares += d * d
        v = squares / count
        scale = 1.0 / math.sqrt(v + eps)
        w, b = weight[c], bias[c]
        for n in range(items):
            for s in range(positions):
                h = (x[n, c, s] - m) * scale
                x_hat[n, c, s] = h
                out[n, c, s] = h * w + b
        mean[c], var[c], inv_std[c] = m, v, scale


@kernel(fastmath=_FAST)
def batch_norm_backward(g, x_hat, weight, inv_std, gx, gw, gb):  # noqa: ANN001, ANN201
    """Gradients of ``batch_norm_forward`` from the output's ``g`` (N, C, S): ``gx`` (N, C, S), ``gw`` and ``gb`` (C,)."""
    items, channels, positions = g.shape
    count = items * positions
    for c in range(channels):
        sum_g, sum_gh = 0.0, 0.0
        for n in range(items):
            for s in range(positions):
                sum_g += g[n, c, s]
                sum_gh += g[n, c, s] * x_hat[n, c, s]
        gb[c], gw[c] = sum_g, sum_gh
        scale = weight[c] * inv_std[c]
        mean_g, mean_gh = sum_g / count, sum_gh / count
        for n in range(items):
            for s in range(positions):
                gx[n, c, s] = scale * (g[n, c, s] - mean_g - x_hat[n, c, s] * mean_gh)
