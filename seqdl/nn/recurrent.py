"""GRU and LSTM: the maths, the whole-sequence ops with backward through time, and the modules.

Equations (PyTorch's, gate order included), for input x_t and previous state h:

GRU, gates r, z, n::

    r = sigmoid(W_ir x_t + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x_t + b_iz + W_hz h + b_hz)
    n = tanh(W_in x_t + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

LSTM, gates i, f, g, o::

    i, f, o = sigmoid(W_i* x_t + b_i* + W_h* h + b_h*)
    g = tanh(W_ig x_t + b_ig + W_hg h + b_hg)
    c' = f * c + i * g
    h' = o * tanh(c')

Each layer and direction is ONE autograd node. The inputs' projection ``x_t W_ih^T``
is one GEMM per block of steps; each step is one GEMM with the recurrent weights for
all gates together plus one pass of compiled gate maths (:mod:`seqdl.nn.gates`) on
preallocated buffers; the hand-written backward walks the steps in reverse the same
way, one compiled pass and one GEMM a step. Weight gradients are one GEMM each over
all steps.

Every step's gates are kept only when a backward will need them, so inference on a
long sequence (the DNA models run on whole genome chunks) holds one block of
projections and one step of gates.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from .. import random as _random
from ..tensor import DEFAULT_DTYPE, Tensor, cat, dropout, is_grad_enabled, stack
from .module import Module, Parameter


PROJECTION_BYTES = 2 << 20  # one block of input projections: small enough to stay in cache between its steps


def _projection_blocks(xs: np.ndarray, w_ih: np.ndarray, width: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(t, x_t W_ih^T)`` for every step t of (T, B, I) ``xs``, computed one GEMM per block of steps into one
    reused buffer (no bias: the gate kernels add it)."""
    steps, batch, inputs = xs.shape
    block = max(1, min(steps, PROJECTION_BYTES // (batch * width * xs.itemsize)))
    buffer = np.empty((block, batch, width), xs.dtype)
    for first in range(0, steps, block):
        count = min(block, steps - first)
        np.matmul(xs[first:first + count].reshape(count * batch, inputs), w_ih.T,
                  out=buffer[:count].reshape(count * batch, width))
        for k in range(count):
            yield first + k, buffer[k]


def _recurrent_grads(d_pre: np.ndarray, hs_prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of W_hh and b_hh from the recurrent-side pre-activation gradients of all steps."""
    flat = d_pre.reshape(-1, d_pre.shape[-1])
    return flat.T @ hs_prev.reshape(flat.shape[0], -1), flat.sum(axis=0)


def _input_grads(d_pre: np.ndarray, xs: np.ndarray, w_ih: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of x, W_ih and b_ih from the input-side pre-activation gradients of all steps."""
    flat = d_pre.reshape(-1, d_pre.shape[-1])
    return (flat @ w_ih).reshape(xs.shape), flat.T @ xs.reshape(flat.shape[0], -1), flat.sum(axis=0)


def _assemble(parents: dict[str, Tensor | None], grads: dict[str, np.ndarray | None]) -> tuple[list[Tensor], Any]:
    """Parents present (in a fixed order) and a backward result aligned with them."""
    names = [k for k, v in parents.items() if v is not None]
    return [parents[k] for k in names], [grads.get(k) for k in names]


# ---------------------------------------------------------------------- GRU
def gru_layer(x: Tensor, h0: Tensor | None, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
              reverse: bool = False) -> tuple[Tensor, Tensor]:
    """One GRU layer in one direction over a whole sequence.

    ``x`` is (T, B, I), ``h0`` (B, H) or None for zeros. Returns ``(outputs, h_T)``:
    outputs (T, B, H) in input time order, and the final state (a view of the
    outputs at the last step processed). ``reverse`` runs from t = T-1 down to 0.
    """
    from . import gates as kernels  # numba: imported by the first recurrent layer run, not by every command

    xs = x.data[::-1] if reverse else x.data
    steps, batch, _ = xs.shape
    hidden = w_hh.shape[1]
    dtype = xs.dtype
    h2 = 2 * hidden
    w_hh_t = w_hh.data.T
    # b_hh of r and z simply adds to the input side; b_hn must stay inside r * (...).
    bias, b_hn = np.zeros(3 * hidden, dtype), np.zeros(hidden, dtype)
    if b_ih is not None:
        bias += b_ih.data
    if b_hh is not None:
        bias[:h2] += b_hh.data[:h2]
        b_hn += b_hh.data[h2:]
    parents, grads_for = _gru_parents(x, h0, w_ih, w_hh, b_ih, b_hh)
    keep = is_grad_enabled() and any(p.requires_grad for p in parents)
    slots = steps if keep else 1

    hs = np.empty((steps + 1, batch, hidden), dtype)
    hs[0] = 0 if h0 is None else h0.data
    rz = np.empty((slots, batch, h2), dtype)
    n = np.empty((slots, batch, hidden), dtype)
    hn = np.empty((slots, batch, hidden), dtype)  # W_hn h + b_hn, needed for dr
    hp = np.empty((batch, 3 * hidden), dtype)
    for t, xp in _projection_blocks(xs, w_ih.data, 3 * hidden):
        slot = t if keep else 0
        np.matmul(hs[t], w_hh_t, out=hp)
        kernels.gru_forward(xp, hp, bias, b_hn, hs[t], rz[slot], hn[slot], n[slot], hs[t + 1])
    outputs = hs[1:][::-1] if reverse else hs[1:]

    def backward(g: np.ndarray) -> list[np.ndarray | None]:
        g = np.ascontiguousarray(g, dtype)
        g = g[::-1] if reverse else g
        d_hidden = np.empty((steps, batch, 3 * hidden), dtype)  # w.r.t. the recurrent projection
        d_pre_n = np.empty((steps, batch, hidden), dtype)  # w.r.t. the input projection's n part
        dh = np.zeros((batch, hidden), dtype)
        carry = np.zeros((batch, hidden), dtype)
        for t in range(steps - 1, -1, -1):
            kernels.gru_backward(dh, g[t], carry, rz[t], n[t], hn[t], hs[t], d_hidden[t], d_pre_n[t])
            np.matmul(d_hidden[t], w_hh.data, out=dh)
        dh += carry
        gw_hh, gb_hh = _recurrent_grads(d_hidden, hs[:-1])
        d_hidden[..., h2:] = d_pre_n  # r and z parts are shared; now it is the input-side gradient
        gx, gw_ih, gb_ih = _input_grads(d_hidden, xs, w_ih.data)
        return grads_for(gx[::-1] if reverse else gx, dh, gw_ih, gw_hh, gb_ih, gb_hh)

    out = Tensor.from_op(outputs, parents, backward, "gru")
    return out, out[0] if reverse else out[steps - 1]


def gru_blocks(x: np.ndarray, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
               reverse: bool = False, block: int = 256) -> Iterator[tuple[int, np.ndarray]]:
    """Inference of one GRU layer and direction over a long (T, B, I) sequence, ``block`` steps at a time.

    Yields ``(first, outputs)``: the outputs (n, B, H) of steps ``[first, first + n)``, in the order the steps
    are run (from the end when ``reverse``), each block starting from the state the one before left. The
    caller holds one block of outputs at a time instead of T steps of them.
    """
    # Constants, not parameters: no graph is recorded and each step's gates are dropped once used.
    weights = [None if w is None else Tensor(w.data) for w in (w_ih, w_hh, b_ih, b_hh)]
    starts = range(0, len(x), block)
    state = None
    for first in reversed(starts) if reverse else starts:
        out, last = gru_layer(Tensor(x[first:first + block]), state, *weights, reverse)
        state = Tensor(last.data.copy())  # a view would keep the whole block alive through the next one
        yield first, out.data


def _gru_parents(x: Tensor, h0: Tensor | None, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None):
    candidates = {"x": x, "h0": h0, "w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}
    parents, _ = _assemble(candidates, {})

    def grads_for(gx, gh0, gw_ih, gw_hh, gb_ih, gb_hh) -> list[np.ndarray | None]:
        values = {"x": gx, "h0": gh0, "w_ih": gw_ih, "w_hh": gw_hh, "b_ih": gb_ih, "b_hh": gb_hh}
        return _assemble(candidates, values)[1]

    return parents, grads_for


# --------------------------------------------------------------------- LSTM
def lstm_layer(x: Tensor, h0: Tensor | None, c0: Tensor | None, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
               b_hh: Tensor | None, reverse: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM layer in one direction over a whole sequence: ``(outputs, h_T, c_T)``.

    The node's data packs the outputs (T rows) and c_T (one more row), so both
    carry gradients through one graph node; the three results are views of it.
    """
    from . import gates as kernels  # numba: imported by the first recurrent layer run, not by every command

    xs = x.data[::-1] if reverse else x.data
    steps, batch, _ = xs.shape
    hidden = w_hh.shape[1]
    dtype = xs.dtype
    w_hh_t = w_hh.data.T
    bias = np.zeros(4 * hidden, dtype)
    for b in (b_ih, b_hh):
        if b is not None:
            bias += b.data
    candidates = {"x": x, "h0": h0, "c0": c0, "w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}
    parents, _ = _assemble(candidates, {})
    keep = is_grad_enabled() and any(p.requires_grad for p in parents)
    slots = steps if keep else 1

    hs = np.empty((steps + 1, batch, hidden), dtype)
    hs[0] = 0 if h0 is None else h0.data
    cs = np.empty((steps + 1, batch, hidden), dtype)
    cs[0] = 0 if c0 is None else c0.data
    gates = np.empty((slots, batch, 4 * hidden), dtype)  # activated i, f, g, o
    tanh_c = np.empty((slots, batch, hidden), dtype)
    hp = np.empty((batch, 4 * hidden), dtype)
    for t, xp in _projection_blocks(xs, w_ih.data, 4 * hidden):
        slot = t if keep else 0
        np.matmul(hs[t], w_hh_t, out=hp)
        kernels.lstm_forward(xp, hp, bias, gates[slot], cs[t], cs[t + 1], tanh_c[slot], hs[t + 1])
    packed = np.empty((steps + 1, batch, hidden), dtype)
    packed[:steps] = hs[1:][::-1] if reverse else hs[1:]
    packed[steps] = cs[steps]

    def backward(g: np.ndarray) -> list[np.ndarray | None]:
        g = np.ascontiguousarray(g, dtype)
        g_out = g[:steps][::-1] if reverse else g[:steps]
        d_pre = np.empty((steps, batch, 4 * hidden), dtype)
        dh = np.zeros((batch, hidden), dtype)
        dc = g[steps].copy()
        for t in range(steps - 1, -1, -1):
            kernels.lstm_backward(dh, g_out[t], dc, gates[t], tanh_c[t], cs[t], d_pre[t])
            np.matmul(d_pre[t], w_hh.data, out=dh)
        gw_hh, gb = _recurrent_grads(d_pre, hs[:-1])
        gx, gw_ih, _ = _input_grads(d_pre, xs, w_ih.data)
        values = {"x": gx[::-1] if reverse else gx, "h0": dh, "c0": dc, "w_ih": gw_ih, "w_hh": gw_hh,
                  "b_ih": gb, "b_hh": gb}
        return _assemble(candidates, values)[1]

    node = Tensor.from_op(packed, parents, backward, "lstm")
    outputs = node[:steps]
    return outputs, node[0] if reverse else node[steps - 1], node[steps]


# ------------------------------------------------------------------ modules
class _RNNBase(Module):
    n_gates = 0

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False) -> None:
        super().__init__()
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(f"hidden_size and num_layers must be positive, got {hidden_size} and {num_layers}")
        if not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, dropout, bidirectional
        directions = 2 if bidirectional else 1
        bound = 1 / math.sqrt(hidden_size)
        rows = self.n_gates * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                shapes = {"weight_ih": (rows, layer_input), "weight_hh": (rows, hidden_size)}
                if bias:
                    shapes.update({"bias_ih": (rows,), "bias_hh": (rows,)})
                for name, shape in shapes.items():
                    values = _random.generator().uniform(-bound, bound, shape).astype(DEFAULT_DTYPE)
                    setattr(self, f"{name}_l{layer}{suffix}", Parameter(values))

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def layer_weights(self, layer: int, direction: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """``(weight_ih, weight_hh, bias_ih, bias_hh)`` of one layer and direction (0 forward, 1 reverse)."""
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        return (getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix),
                getattr(self, "bias_ih" + suffix, None), getattr(self, "bias_hh" + suffix, None))

    def _check(self, x: Tensor, states: tuple[Tensor | None, ...]) -> tuple[Tensor, bool]:
        """Validate shapes; return the input as (T, B, I) and whether it was unbatched."""
        if x.ndim not in (2, 3):
            raise ValueError(f"{type(self).__name__} expects input of 2 or 3 dimensions, got shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__} expects input_size {self.input_size}, got {x.shape[-1]} "
                             f"(input shape {x.shape})")
        unbatched = x.ndim == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        batch = x.shape[1]
        expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
        for state in states:
            if state is not None and tuple(state.shape) != (expected if not unbatched else (expected[0], expected[2])):
                want = expected if not unbatched else (expected[0], expected[2])
                raise ValueError(f"{type(self).__name__} expects hidden state of shape {want}, got {tuple(state.shape)}")
        return x, unbatched

    def _finish(self, output: Tensor, unbatched: bool) -> Tensor:
        if unbatched:
            return output.squeeze(1)
        return output.transpose(0, 1) if self.batch_first else output

    def _run(self, x: Tensor, states: tuple[Tensor | None, ...]) -> tuple[Tensor, list[list[Tensor]]]:
        """All layers and directions; returns the last layer's output and the final states per layer/direction."""
        finals: list[list[Tensor]] = []
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                initial = [None if s is None else s[index] for s in states]
                out, *final = self._layer(layer_input, initial, *self.layer_weights(layer, direction), reverse=bool(direction))
                outputs.append(out)
                finals.append(final)
            layer_input = outputs[0] if len(outputs) == 1 else cat(outputs, axis=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = dropout(layer_input, self.dropout, True)
        return layer_input, finals

    def _layer(self, x: Tensor, initial: list[Tensor | None], *weights: Any, reverse: bool) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, bidirectional={self.bidirectional}")


def _as_state(value: Any) -> Tensor | None:
    return value if value is None or isinstance(value, Tensor) else Tensor(value)


class GRU(_RNNBase):
    """``torch.nn.GRU``: ``output, h_n = gru(input, h_0=None)``."""

    n_gates = 3

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Tensor]:
        h0 = _as_state(hx)
        x, unbatched = self._check(input, (h0,))
        if unbatched and h0 is not None:
            h0 = h0.unsqueeze(1)
        output, finals = self._run(x, (h0,))
        h_n = stack([f[0] for f in finals], axis=0)
        return self._finish(output, unbatched), (h_n.squeeze(1) if unbatched else h_n)

    def _layer(self, x: Tensor, initial: list[Tensor | None], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
               b_hh: Tensor | None, reverse: bool) -> tuple[Tensor, ...]:
        return gru_layer(x, initial[0], w_ih, w_hh, b_ih, b_hh, reverse)


class LSTM(_RNNBase):
    """``torch.nn.LSTM``: ``output, (h_n, c_n) = lstm(input, (h_0, c_0))`` (``hx=None`` for zeros)."""

    n_gates = 4

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h0, c0 = (None, None) if hx is None else (_as_state(hx[0]), _as_state(hx[1]))
        x, unbatched = self._check(input, (h0, c0))
        if unbatched and h0 is not None:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        output, finals = self._run(x, (h0, c0))
        h_n = stack([f[0] for f in finals], axis=0)
        c_n = stack([f[1] for f in finals], axis=0)
        if unbatched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return self._finish(output, unbatched), (h_n, c_n)

    def _layer(self, x: Tensor, initial: list[Tensor | None], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
               b_hh: Tensor | None, reverse: bool) -> tuple[Tensor, ...]:
        return lstm_layer(x, initial[0], initial[1], w_ih, w_hh, b_ih, b_hh, reverse)
