"""The recurrent cells' per-step gate maths, compiled by numba: one pass over a step's gates, forward and backward.

:mod:`seqdl.nn.recurrent` runs each step as one GEMM with the recurrent weights and one call
here. Done in NumPy, a step's gate maths is a dozen array operations, each with its own
temporary and its own trip through memory; and NumPy's float32 ``tanh`` runs at scalar speed
(about 4 ns an element here). Here every element of a step is visited once, and ``tanh`` on
float32 is a rational approximation the compiler vectorises (about 0.5 ns an element), within
5 units in the last place of the true value. float64 (the finite-difference checks) uses the
exact ``tanh``. The kernels release the GIL, so the scan's worker threads run them side by side.

Shapes: B rows, H hidden units; ``r, z`` (GRU) and ``i, f, g, o`` (LSTM) are PyTorch's gate order.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .jit import kernel


_TANH_LIMIT = 7.90531110763549805  # beyond it float32 tanh is +-1 to the last bit
# Constants typed float32: a Python 1 or 0.5 would promote float32 arithmetic to float64 (float64 stays float64).
ONE, HALF = np.float32(1), np.float32(0.5)


def tanh(x: float) -> float:
    """``tanh`` inside the kernels (the overload below chooses the implementation by type)."""
    return math.tanh(x)


def _tanh_float32(x):  # noqa: ANN001, ANN202 - compiled by numba
    # Eigen's rational approximation for float: odd degree 13 over even degree 6, on the clamped input.
    x = min(max(x, np.float32(-_TANH_LIMIT)), np.float32(_TANH_LIMIT))
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = x2 * p + np.float32(-8.60467152213735e-11)
    p = x2 * p + np.float32(5.12229709037114e-08)
    p = x2 * p + np.float32(1.48572235717979e-05)
    p = x2 * p + np.float32(6.37261928875436e-04)
    p = x2 * p + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = x2 * q + np.float32(2.26843463243900e-03)
    q = x2 * q + np.float32(4.89352518554385e-03)
    return x * p / q


@overload(tanh, inline="always")
def _tanh(x):  # noqa: ANN001, ANN202
    if x == types.float32:
        return _tanh_float32
    return lambda x: math.tanh(x)


@njit(inline="always")
def sigmoid(x):  # noqa: ANN001, ANN201
    return HALF + HALF * tanh(HALF * x)


# Each row runs as a few simple loops over ``range(n)``, each with few arrays: one loop doing everything, or a
# loop over ``range(a, b)``, is not vectorised by the compiler (2-4x slower, measured).
@kernel
def gru_forward(xp, hp, bias, b_hn, h_prev, rz, hn, n, h):  # noqa: ANN001, ANN201
    """One GRU step. In: ``xp`` = x_t W_ih^T and ``hp`` = h_prev W_hh^T (B, 3H), without biases; ``bias`` (3H)
    = b_ih + (b_hr, b_hz, 0); ``b_hn`` (H). Out: ``rz`` (B, 2H) the activated r and z, ``hn`` = W_hn h + b_hn,
    ``n`` (B, H) the activated candidate, ``h`` the new state."""
    rows, hidden = h.shape
    h2 = 2 * hidden
    for b in range(rows):
        for j in range(h2):
            rz[b, j] = sigmoid(xp[b, j] + hp[b, j] + bias[j])
        for j in range(hidden):
            a = hp[b, h2 + j] + b_hn[j]
            c = tanh(xp[b, h2 + j] + bias[h2 + j] + rz[b, j] * a)
            hn[b, j], n[b, j] = a, c
            h[b, j] = c + rz[b, hidden + j] * (h_prev[b, j] - c)


@kernel
def gru_backward(dh_next, g, carry, rz, n, hn, h_prev, d_hidden, d_n):  # noqa: ANN001, ANN201
    """One step back through a GRU step. ``dh = dh_next + carry + g`` is the loss's gradient w.r.t. this step's
    output, where ``dh_next`` (from the later step's recurrent GEMM) and ``carry`` (its direct z * dh path) come
    from the step after. Out: ``d_hidden`` (B, 3H) w.r.t. the recurrent pre-activations (r, z and W_hn h + b_hn),
    ``d_n`` (B, H) w.r.t. the input-side pre-activation of n, and ``carry`` (in place) = z * dh for the step
    before."""
    rows, hidden = d_n.shape
    h2 = 2 * hidden
    for b in range(rows):
        for j in range(hidden):
            dh = dh_next[b, j] + carry[b, j] + g[b, j]
            z, c = rz[b, hidden + j], n[b, j]
            d_n[b, j] = dh * (ONE - z) * (ONE - c * c)
            d_hidden[b, hidden + j] = dh * (h_prev[b, j] - c) * z * (ONE - z)
            carry[b, j] = dh * z
        for j in range(hidden):
            r, dc = rz[b, j], d_n[b, j]
            d_hidden[b, j] = dc * hn[b, j] * r * (ONE - r)
            d_hidden[b, h2 + j] = dc * r


@kernel
def lstm_forward(xp, hp, bias, gates, c_prev, c, tanh_c, h):  # noqa: ANN001, ANN201
    """One LSTM step. In: ``xp`` = x_t W_ih^T and ``hp`` = h_prev W_hh^T (B, 4H), without biases; ``bias`` (4H)
    = b_ih + b_hh. Out: ``gates`` (B, 4H) the activated i, f, g, o; ``c``, ``tanh_c`` = tanh(c) and ``h``
    (B, H)."""
    rows, hidden = h.shape
    h2, h3 = 2 * hidden, 3 * hidden
    for b in range(rows):
        for j in range(h2):
            gates[b, j] = sigmoid(hp[b, j] + xp[b, j] + bias[j])
        for j in range(hidden):
            gates[b, h2 + j] = tanh(hp[b, h2 + j] + xp[b, h2 + j] + bias[h2 + j])
        for j in range(hidden):
            gates[b, h3 + j] = sigmoid(hp[b, h3 + j] + xp[b, h3 + j] + bias[h3 + j])
        for j in range(hidden):
            cell = gates[b, hidden + j] * c_prev[b, j] + gates[b, j] * gates[b, h2 + j]
            t = tanh(cell)
            c[b, j], tanh_c[b, j], h[b, j] = cell, t, gates[b, h3 + j] * t


@kernel
def lstm_backward(dh_next, g_out, dc, gates, tanh_c, c_prev, d_pre):  # noqa: ANN001, ANN201
    """One step back through an LSTM step. ``dh = dh_next + g_out`` w.r.t. this step's output (``dh_next`` from
    the later step's recurrent GEMM); ``dc`` (B, H) w.r.t. this step's cell, updated in place to the previous
    cell's. Out: ``d_pre`` (B, 4H) w.r.t. the pre-activations of i, f, g, o."""
    rows, hidden = dc.shape
    h2, h3 = 2 * hidden, 3 * hidden
    for b in range(rows):
        for j in range(hidden):
            dh = dh_next[b, j] + g_out[b, j]
            o, t = gates[b, h3 + j], tanh_c[b, j]
            d_pre[b, h3 + j] = dh * t * o * (ONE - o)
            dc[b, j] += dh * o * (ONE - t * t)
        for j in range(hidden):
            i, g, d = gates[b, j], gates[b, h2 + j], dc[b, j]
            d_pre[b, j] = d * g * i * (ONE - i)
            d_pre[b, h2 + j] = d * i * (ONE - g * g)
        for j in range(hidden):
            f, d = gates[b, hidden + j], dc[b, j]
            d_pre[b, hidden + j] = d * c_prev[b, j] * f * (ONE - f)
            dc[b, j] = d * f
