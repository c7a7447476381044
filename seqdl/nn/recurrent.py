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

Each layer and direction is ONE autograd node: each step is one GEMM with the
recurrent weights for all gates together plus in-place gate maths on preallocated
buffers, and the hand-written backward walks the steps in reverse with the
step-independent factors computed for the whole sequence up front. Weight
gradients are one GEMM each over all steps. ``sigmoid(x) = (1 + tanh(x / 2)) / 2``
lets one ``tanh`` call activate every gate at once.

The two cells differ in memory. The GRU (which the DNA models run on whole genome
chunks) projects its inputs one GEMM per :data:`PROJECTION_STEPS` steps and keeps
every step's gates only when a backward will need them, so inference on a long
sequence holds one block of projections and one step of gates. The LSTM projects
all steps' inputs in one GEMM and always keeps every step's gates.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from .. import random as _random
from ..tensor import DEFAULT_DTYPE, Tensor, cat, dropout, is_grad_enabled, stack
from .module import Module, Parameter


PROJECTION_STEPS = 256  # the GRU's input projection is one GEMM per this many steps: bounded memory on long inputs


@functools.lru_cache(maxsize=64)
def _gate_affine(n_gates: int, tanh_gate: int | None, hidden: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column (pre-scale, post-scale, post-shift) so that ``post * tanh(pre * x) + shift`` is
    sigmoid on every gate and tanh on gate ``tanh_gate``. Cached: sampling calls this every step."""
    pre = np.full((n_gates, hidden), 0.5, dtype)
    post = np.full((n_gates, hidden), 0.5, dtype)
    shift = np.full((n_gates, hidden), 0.5, dtype)
    if tanh_gate is not None:
        pre[tanh_gate] = post[tanh_gate] = 1
        shift[tanh_gate] = 0
    arrays = pre.reshape(-1), post.reshape(-1), shift.reshape(-1)
    for array in arrays:
        array.flags.writeable = False
    return arrays


def _input_projection(xs: np.ndarray, w_ih: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``x_t @ W_ih^T + bias`` for every time step in one GEMM: (T, B, I) -> (T, B, G*H)."""
    t, b, i = xs.shape
    out = xs.reshape(t * b, i) @ w_ih.T
    if bias is not None:
        out += bias
    return out.reshape(t, b, -1)


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
    xs = x.data[::-1] if reverse else x.data
    steps, batch, _ = xs.shape
    hidden = w_hh.shape[1]
    dtype = xs.dtype
    h2 = 2 * hidden
    w_hh_t = w_hh.data.T
    b_hn = b_hh.data[h2:] if b_hh is not None else None
    # b_hh of r and z simply adds to the input side; b_hn must stay inside r * (...).
    bias = None if b_ih is None else b_ih.data.copy()
    if b_hh is not None:
        bias = (np.zeros(3 * hidden, dtype) if bias is None else bias)
        bias[:h2] += b_hh.data[:h2]
    pre, post, shift = _gate_affine(2, None, hidden, dtype.str)
    parents, grads_for = _gru_parents(x, h0, w_ih, w_hh, b_ih, b_hh)
    # Every step's gates are kept only for a backward; inference reuses one step's buffers.
    keep = is_grad_enabled() and any(p.requires_grad for p in parents)
    slots = steps if keep else 1

    hs = np.empty((steps + 1, batch, hidden), dtype)
    hs[0] = 0 if h0 is None else h0.data
    rz = np.empty((slots, batch, h2), dtype)
    n = np.empty((slots, batch, hidden), dtype)
    hn = np.empty((slots, batch, hidden), dtype)  # W_hn h + b_hn, needed for dr
    hp = np.empty((batch, 3 * hidden), dtype)
    for t in range(steps):
        if t % PROJECTION_STEPS == 0:  # the next block of steps' input projection, one GEMM
            xp = _input_projection(xs[t:t + PROJECTION_STEPS], w_ih.data, bias)
        slot, xp_t = (t if keep else 0), xp[t % PROJECTION_STEPS]
        np.matmul(hs[t], w_hh_t, out=hp)
        gates = rz[slot]
        np.add(xp_t[:, :h2], hp[:, :h2], out=gates)
        gates *= pre
        np.tanh(gates, out=gates)
        gates *= post
        gates += shift
        if b_hn is not None:
            np.add(hp[:, h2:], b_hn, out=hn[slot])
        else:
            hn[slot] = hp[:, h2:]
        n_t = n[slot]
        np.multiply(gates[:, :hidden], hn[slot], out=n_t)
        n_t += xp_t[:, h2:]
        np.tanh(n_t, out=n_t)
        h = hs[t + 1]
        np.subtract(hs[t], n_t, out=h)
        h *= gates[:, hidden:]
        h += n_t
    outputs = hs[1:][::-1] if reverse else hs[1:]

    def backward(g: np.ndarray) -> list[np.ndarray | None]:
        g = g[::-1] if reverse else g
        r, z = rz[..., :hidden], rz[..., hidden:]
        d_n = (1 - z) * (1 - n * n)  # dh'/d(pre_n)
        d_z = (hs[:-1] - n) * z * (1 - z)  # dh'/d(pre_z)
        d_r = hn * r * (1 - r)  # d(pre_n)/d(pre_r)
        d_hidden = np.empty((steps, batch, 3 * hidden), dtype)  # w.r.t. the recurrent projection
        d_pre_n = np.empty((steps, batch, hidden), dtype)  # w.r.t. the input projection's n part
        dh = np.zeros((batch, hidden), dtype)
        carry = np.empty((batch, hidden), dtype)
        for t in range(steps - 1, -1, -1):
            dh += g[t]
            dn = d_pre_n[t]
            np.multiply(dh, d_n[t], out=dn)
            np.multiply(dh, d_z[t], out=d_hidden[t, :, hidden:h2])
            np.multiply(dn, d_r[t], out=d_hidden[t, :, :hidden])
            np.multiply(dn, r[t], out=d_hidden[t, :, h2:])
            np.multiply(dh, z[t], out=carry)
            np.matmul(d_hidden[t], w_hh.data, out=dh)
            dh += carry
        del d_n, d_z, d_r
        gw_hh, gb_hh = _recurrent_grads(d_hidden, hs[:-1])
        d_hidden[..., h2:] = d_pre_n  # r and z parts are shared; now it is the input-side gradient
        gx, gw_ih, gb_ih = _input_grads(d_hidden, xs, w_ih.data)
        return grads_for(gx[::-1] if reverse else gx, dh, gw_ih, gw_hh, gb_ih, gb_hh)

    out = Tensor.from_op(outputs, parents, backward, "gru")
    return out, out[0] if reverse else out[steps - 1]


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
    xs = x.data[::-1] if reverse else x.data
    steps, batch, _ = xs.shape
    hidden = w_hh.shape[1]
    dtype = xs.dtype
    w_hh_t = w_hh.data.T
    bias = None
    for b in (b_ih, b_hh):
        if b is not None:
            bias = b.data.copy() if bias is None else bias + b.data
    xp = _input_projection(xs, w_ih.data, bias)
    pre, post, shift = _gate_affine(4, 2, hidden, dtype.str)

    hs = np.empty((steps + 1, batch, hidden), dtype)
    hs[0] = 0 if h0 is None else h0.data
    cs = np.empty((steps + 1, batch, hidden), dtype)
    cs[0] = 0 if c0 is None else c0.data
    gates = np.empty((steps, batch, 4 * hidden), dtype)  # activated i, f, g, o
    tanh_c = np.empty((steps, batch, hidden), dtype)
    ig = np.empty((batch, hidden), dtype)
    for t in range(steps):
        a = gates[t]
        np.matmul(hs[t], w_hh_t, out=a)
        a += xp[t]
        a *= pre
        np.tanh(a, out=a)
        a *= post
        a += shift
        c = cs[t + 1]
        np.multiply(a[:, hidden : 2 * hidden], cs[t], out=c)
        np.multiply(a[:, :hidden], a[:, 2 * hidden : 3 * hidden], out=ig)
        c += ig
        np.tanh(c, out=tanh_c[t])
        np.multiply(a[:, 3 * hidden :], tanh_c[t], out=hs[t + 1])
    packed = np.empty((steps + 1, batch, hidden), dtype)
    packed[:steps] = hs[1:][::-1] if reverse else hs[1:]
    packed[steps] = cs[steps]

    def backward(g: np.ndarray) -> list[np.ndarray | None]:
        g_out = g[:steps][::-1] if reverse else g[:steps]
        i, f = gates[..., :hidden], gates[..., hidden : 2 * hidden]
        gg, o = gates[..., 2 * hidden : 3 * hidden], gates[..., 3 * hidden :]
        d_o = tanh_c * o * (1 - o)  # dh'/d(pre_o)
        d_c = o * (1 - tanh_c * tanh_c)  # dh'/dc'
        d_i = gg * i * (1 - i)  # dc'/d(pre_i)
        d_f = cs[:-1] * f * (1 - f)  # dc'/d(pre_f)
        d_g = i * (1 - gg * gg)  # dc'/d(pre_g)
        d_pre = np.empty((steps, batch, 4 * hidden), dtype)
        dh = np.zeros((batch, hidden), dtype)
        dc = np.array(g[steps], dtype=dtype)
        carry = np.empty((batch, hidden), dtype)
        for t in range(steps - 1, -1, -1):
            dh += g_out[t]
            np.multiply(dh, d_o[t], out=d_pre[t, :, 3 * hidden :])
            np.multiply(dh, d_c[t], out=carry)
            dc += carry
            np.multiply(dc, d_i[t], out=d_pre[t, :, :hidden])
            np.multiply(dc, d_f[t], out=d_pre[t, :, hidden : 2 * hidden])
            np.multiply(dc, d_g[t], out=d_pre[t, :, 2 * hidden : 3 * hidden])
            dc *= f[t]
            np.matmul(d_pre[t], w_hh.data, out=dh)
        del d_o, d_c, d_i, d_f, d_g
        gw_hh, gb = _recurrent_grads(d_pre, hs[:-1])
        gx, gw_ih, _ = _input_grads(d_pre, xs, w_ih.data)
        values = {"x": gx[::-1] if reverse else gx, "h0": dh, "c0": dc, "w_ih": gw_ih, "w_hh": gw_hh,
                  "b_ih": gb, "b_hh": gb}
        return _assemble(candidates, values)[1]

    candidates = {"x": x, "h0": h0, "c0": c0, "w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}
    parents, _ = _assemble(candidates, {})
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
