"""Tensors with reverse-mode automatic differentiation.

Every op computes its result with NumPy on whole arrays and, when a gradient is
needed, records its input tensors and one small closure that maps the gradient of
the output to the gradients of the inputs. :meth:`Tensor.backward` sorts the
recorded graph topologically (iteratively, so depth is limited only by memory),
walks it from the output back to the leaves and sums the gradients of tensors
that were used more than once.

Heavy ops (convolution, recurrent layers, fused losses) use the same mechanism
through :meth:`Tensor.from_op`: one node for the whole op, with a hand-written
backward.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import numpy as np

from . import random as _random

DEFAULT_DTYPE = np.float32

# A backward closure takes the output's gradient and returns one gradient (or
# None) per parent, in the order the parents were recorded.
Backward = Callable[[np.ndarray], Sequence["np.ndarray | None"]]


class _GradMode:
    enabled = True


class no_grad:
    """Context manager and decorator that stops graph recording (like ``torch.no_grad``)."""

    def __enter__(self) -> None:
        self._previous = _GradMode.enabled
        _GradMode.enabled = False

    def __exit__(self, *exc: object) -> None:
        _GradMode.enabled = self._previous

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper


def is_grad_enabled() -> bool:
    return _GradMode.enabled


def _as_array(data: Any, dtype: Any = None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    array = np.asarray(data)
    if dtype is not None:
        return array.astype(dtype, copy=False)
    if array.dtype.kind == "f" and array.dtype != DEFAULT_DTYPE:
        return array.astype(DEFAULT_DTYPE)
    return array


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes along which an input of ``shape`` was broadcast."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(int(a) % ndim if ndim else 0 for a in axes)


def _expand_reduced(grad: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Give a reduction's output gradient back the reduced axes (size 1)."""
    if keepdims:
        return grad
    return np.expand_dims(grad, axes) if axes else grad


def _is_basic_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    ``data`` and ``grad`` are plain NumPy arrays. Floating-point input becomes
    float32 unless ``dtype`` asks otherwise; integer and boolean input keeps its
    type (and cannot require a gradient).
    """

    # Make ``ndarray op Tensor`` call the Tensor's reflected operator.
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require grad, not {self.data.dtype}")
        self.requires_grad = requires_grad
        self.grad: np.ndarray | None = None
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Backward | None = None
        self._op = ""
        self._freed = False

    # ----------------------------------------------------------------- graph
    @staticmethod
    def from_op(data: np.ndarray, parents: Sequence["Tensor"], backward: Backward, op: str = "") -> "Tensor":
        """The result of an op: records ``parents`` and ``backward`` when a gradient is needed."""
        out = Tensor.__new__(Tensor)
        out.data = data
        out.grad = None
        out._op = op
        out._freed = False
        if _GradMode.enabled and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents = tuple(parents)
            out._backward = backward
        else:
            out.requires_grad = False
            out._parents = ()
            out._backward = None
        return out

    @property
    def is_leaf(self) -> bool:
        return self._backward is None and not self._freed

    def _topological_order(self) -> list["Tensor"]:
        """Nodes that need a gradient, every node after all of its parents."""
        order: list[Tensor] = []
        visited: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, parents_done = stack.pop()
            if parents_done:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            for parent in node._parents:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
        return order

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        The graph is freed afterwards unless ``retain_graph`` is true; a second
        call through a freed graph raises ``RuntimeError``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar output, not shape {self.shape}")
            grad = np.ones_like(self.data)
        else:
            grad = _as_array(grad, self.data.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"gradient shape {grad.shape} does not match tensor shape {self.shape}")
        grads: dict[int, np.ndarray] = {id(self): grad}
        for node in reversed(self._topological_order()):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._freed:
                raise RuntimeError(
                    "backward() through a graph that has already been freed; "
                    "pass retain_graph=True to the first backward() call"
                )
            if node._backward is None:
                # A leaf: copy, because closures may hand the same array to several parents.
                g = np.array(g, dtype=node.data.dtype)
                node.grad = g if node.grad is None else node.grad + g
                continue
            for parent, parent_grad in zip(node._parents, node._backward(g)):
                if parent_grad is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = grads[key] + parent_grad if key in grads else parent_grad
            if not retain_graph:
                node._backward = None
                node._parents = ()
                node._freed = True

    # ------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> "Tensor":
        return Tensor(self.data, dtype=self.data.dtype)

    def astype(self, dtype: Any) -> "Tensor":
        source = self.data.dtype
        return Tensor.from_op(self.data.astype(dtype), (self,), lambda g: (g.astype(source),), "astype")

    def float(self) -> "Tensor":
        return self.astype(np.float32)

    def double(self) -> "Tensor":
        return self.astype(np.float64)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}, dtype={self.dtype}{grad})"

    def _lift(self, other: Any) -> "Tensor":
        """Turn a scalar or array operand into a constant tensor of this tensor's dtype."""
        if isinstance(other, Tensor):
            return other
        return Tensor(other, dtype=self.data.dtype if self.data.dtype.kind == "f" else None)

    # ------------------------------------------------------- arithmetic
    def __add__(self, other: Any) -> "Tensor":
        other = self._lift(other)
        a_shape, b_shape = self.shape, other.shape
        return Tensor.from_op(
            self.data + other.data,
            (self, other),
            lambda g: (_unbroadcast(g, a_shape), _unbroadcast(g, b_shape)),
            "add",
        )

    def __sub__(self, other: Any) -> "Tensor":
        other = self._lift(other)
        a_shape, b_shape = self.shape, other.shape
        return Tensor.from_op(
            self.data - other.data,
            (self, other),
            lambda g: (_unbroadcast(g, a_shape), _unbroadcast(-g, b_shape)),
            "sub",
        )

    def __mul__(self, other: Any) -> "Tensor":
        other = self._lift(other)
        a, b = self.data, other.data
        return Tensor.from_op(
            a * b,
            (self, other),
            lambda g: (
                _unbroadcast(g * b, a.shape) if self.requires_grad else None,
                _unbroadcast(g * a, b.shape) if other.requires_grad else None,
            ),
            "mul",
        )

    def __truediv__(self, other: Any) -> "Tensor":
        other = self._lift(other)
        a, b = self.data, other.data
        return Tensor.from_op(
            a / b,
            (self, other),
            lambda g: (
                _unbroadcast(g / b, a.shape) if self.requires_grad else None,
                _unbroadcast(-g * a / (b * b), b.shape) if other.requires_grad else None,
            ),
            "div",
        )

    def __pow__(self, exponent: Any) -> "Tensor":
        a = self.data
        if not isinstance(exponent, Tensor):
            p = exponent
            return Tensor.from_op(a**p, (self,), lambda g: (g * p * a ** (p - 1),), "pow")
        b = exponent.data
        out = a**b
        return Tensor.from_op(
            out,
            (self, exponent),
            lambda g: (
                _unbroadcast(g * b * a ** (b - 1), a.shape) if self.requires_grad else None,
                _unbroadcast(g * out * np.log(a), b.shape) if exponent.requires_grad else None,
            ),
            "pow",
        )

    def __neg__(self) -> "Tensor":
        return Tensor.from_op(-self.data, (self,), lambda g: (-g,), "neg")

    def __radd__(self, other: Any) -> "Tensor":
        return self + other

    def __rsub__(self, other: Any) -> "Tensor":
        return self._lift(other) - self

    def __rmul__(self, other: Any) -> "Tensor":
        return self * other

    def __rtruediv__(self, other: Any) -> "Tensor":
        return self._lift(other) / self

    def __rpow__(self, other: Any) -> "Tensor":
        return self._lift(other) ** self

    def __matmul__(self, other: Any) -> "Tensor":
        return matmul(self, self._lift(other))

    def __rmatmul__(self, other: Any) -> "Tensor":
        return matmul(self._lift(other), self)

    # Comparisons give plain boolean arrays: they have no gradient.
    def __lt__(self, other: Any) -> np.ndarray:
        return self.data < _as_array(other)

    def __le__(self, other: Any) -> np.ndarray:
        return self.data <= _as_array(other)

    def __gt__(self, other: Any) -> np.ndarray:
        return self.data > _as_array(other)

    def __ge__(self, other: Any) -> np.ndarray:
        return self.data >= _as_array(other)

    # -------------------------------------------------------- reductions
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> "Tensor":
        shape = self.shape
        axes = _normalize_axes(axis, self.ndim)
        return Tensor.from_op(
            self.data.sum(axis=axes, keepdims=keepdims),
            (self,),
            lambda g: (np.broadcast_to(_expand_reduced(g, axes, keepdims), shape),),
            "sum",
        )

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> "Tensor":
        axes = _normalize_axes(axis, self.ndim)
        count = math.prod(self.shape[a] for a in axes)
        return self.sum(axis=axes, keepdims=keepdims) * (1.0 / max(count, 1))

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> "Tensor":
        """Maximum over ``axis``; the gradient is shared equally among tied maxima."""
        return self._extreme(np.max, axis, keepdims, "max")

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> "Tensor":
        return self._extreme(np.min, axis, keepdims, "min")

    def _extreme(self, reduce: Callable, axis: Any, keepdims: bool, op: str) -> "Tensor":
        a = self.data
        axes = _normalize_axes(axis, self.ndim)
        kept = reduce(a, axis=axes, keepdims=True)

        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            hits = a == kept
            share = hits / hits.sum(axis=axes, keepdims=True)
            return (_expand_reduced(g, axes, keepdims) * share.astype(a.dtype),)

        out = kept if keepdims else np.squeeze(kept, axis=axes)
        return Tensor.from_op(out, (self,), backward, op)

    # ------------------------------------------------------------ shapes
    def reshape(self, *shape: Any) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        source = self.shape
        return Tensor.from_op(self.data.reshape(shape), (self,), lambda g: (g.reshape(source),), "reshape")

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        start, end = start_dim % max(self.ndim, 1), end_dim % max(self.ndim, 1)
        shape = self.shape[:start] + (-1,) + self.shape[end + 1 :]
        return self.reshape(shape)

    def unsqueeze(self, axis: int) -> "Tensor":
        return self.reshape(np.expand_dims(self.data, axis).shape)

    def squeeze(self, axis: int | None = None) -> "Tensor":
        return self.reshape(np.squeeze(self.data, axis).shape)

    def transpose(self, *axes: Any) -> "Tensor":
        """``transpose()`` reverses the axes, ``transpose(i, j)`` swaps two (as in torch)."""
        if len(axes) == 2 and all(isinstance(a, (int, np.integer)) for a in axes):
            order = list(range(self.ndim))
            order[axes[0]], order[axes[1]] = order[axes[1]], order[axes[0]]
            return self.permute(order)
        return self.permute(*axes) if axes else self.permute(tuple(reversed(range(self.ndim))))

    def permute(self, *axes: Any) -> "Tensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        inverse = np.argsort(axes)
        return Tensor.from_op(self.data.transpose(axes), (self,), lambda g: (g.transpose(inverse),), "permute")

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def __getitem__(self, index: Any) -> "Tensor":
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        a = self.data
        basic = _is_basic_index(index)

        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            grad = np.zeros_like(a)
            if basic:
                grad[index] = g
            else:
                np.add.at(grad, index, g)  # repeated integer indices must add up
            return (grad,)

        return Tensor.from_op(a[index], (self,), backward, "getitem")

    # ------------------------------------------------------- elementwise
    def exp(self) -> "Tensor":
        out = np.exp(self.data)
        return Tensor.from_op(out, (self,), lambda g: (g * out,), "exp")

    def log(self) -> "Tensor":
        a = self.data
        return Tensor.from_op(np.log(a), (self,), lambda g: (g / a,), "log")

    def sqrt(self) -> "Tensor":
        out = np.sqrt(self.data)
        return Tensor.from_op(out, (self,), lambda g: (g / (2 * out),), "sqrt")

    def abs(self) -> "Tensor":
        a = self.data
        return Tensor.from_op(np.abs(a), (self,), lambda g: (g * np.sign(a),), "abs")

    def tanh(self) -> "Tensor":
        out = np.tanh(self.data)
        return Tensor.from_op(out, (self,), lambda g: (g * (1 - out * out),), "tanh")

    def sigmoid(self) -> "Tensor":
        out = sigmoid_array(self.data)
        return Tensor.from_op(out, (self,), lambda g: (g * out * (1 - out),), "sigmoid")

    def relu(self) -> "Tensor":
        a = self.data
        return Tensor.from_op(np.maximum(a, 0), (self,), lambda g: (g * (a > 0),), "relu")

    def gelu(self, approximate: str = "none") -> "Tensor":
        """GELU, exact (``x * Phi(x)``) or with PyTorch's ``approximate='tanh'`` formula."""
        a = self.data
        if approximate == "tanh":
            c = np.asarray(math.sqrt(2 / math.pi), a.dtype)
            t = np.tanh(c * (a + 0.044715 * a**3))
            out = 0.5 * a * (1 + t)
            derivative = 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * c * (1 + 3 * 0.044715 * a * a)
        elif approximate == "none":
            gauss = np.exp(-0.5 * a * a)  # shared by Phi (float32 path) and its derivative
            cdf = normal_cdf(a, gauss)
            out = a * cdf

            def backward(g: np.ndarray) -> tuple[np.ndarray]:
                derivative = a * gauss
                derivative *= np.asarray(1 / math.sqrt(2 * math.pi), a.dtype)
                derivative += cdf
                return (g * derivative,)

            return Tensor.from_op(out, (self,), backward, "gelu")
        else:
            raise ValueError(f"gelu approximate must be 'none' or 'tanh', not {approximate!r}")
        return Tensor.from_op(out, (self,), lambda g: (g * derivative,), "gelu")

    def softmax(self, axis: int = -1) -> "Tensor":
        out = softmax_array(self.data, axis)

        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            return (out * (g - (g * out).sum(axis=axis, keepdims=True)),)

        return Tensor.from_op(out, (self,), backward, "softmax")

    def log_softmax(self, axis: int = -1) -> "Tensor":
        out = log_softmax_array(self.data, axis)

        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            return (g - np.exp(out) * g.sum(axis=axis, keepdims=True),)

        return Tensor.from_op(out, (self,), backward, "log_softmax")


# ---------------------------------------------------------------- arrays
# Abramowitz & Stegun 7.1.26: erf(z) = 1 - poly(t) exp(-z^2), t = 1 / (1 + p z), |error| <= 1.5e-7.
_AS_P = 0.3275911
_AS_COEFFS = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)


def normal_cdf(a: np.ndarray, gauss: np.ndarray) -> np.ndarray:
    """Phi(a), the standard normal CDF, given ``gauss = exp(-a*a/2)``.

    float32 uses the A&S 7.1.26 polynomial (error below float32 resolution),
    since SciPy's ``erf`` costs about 35 ``exp`` calls per element; float64
    (gradient checks) uses SciPy's exact ``erf``.
    """
    if a.dtype != np.float32:
        from scipy.special import erf  # imported here: scipy.special costs 0.35 s of every command's start-up
        return 0.5 * (1 + erf(a * (1 / math.sqrt(2))))
    t = np.abs(a)
    t *= np.float32(_AS_P / math.sqrt(2))
    t += 1
    np.reciprocal(t, out=t)
    poly = np.full_like(a, _AS_COEFFS[0])
    for coefficient in _AS_COEFFS[1:]:
        poly *= t
        poly += np.float32(coefficient)
    poly *= t
    poly *= gauss  # now 1 - erf(|a| / sqrt 2)
    cdf = np.copysign(1 - poly, a)  # erf(a / sqrt 2)
    cdf += 1
    cdf *= 0.5
    return cdf


def sigmoid_array(a: np.ndarray) -> np.ndarray:
    """Logistic function without overflow warnings for large |a|."""
    return 0.5 * (1 + np.tanh(0.5 * a))


def softmax_array(a: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax_array(a: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# ------------------------------------------------------------ functions
def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def zeros(*shape: int, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(shape, dtype), requires_grad=requires_grad)


def ones(*shape: int, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(shape, dtype), requires_grad=requires_grad)


def randn(*shape: int, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    data = _random.generator().standard_normal(shape).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` with NumPy's rules: 1-D operands are promoted, batch dimensions broadcast."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul needs operands of at least one dimension")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape}")
    x = a.data[None, :] if a.ndim == 1 else a.data
    y = b.data[:, None] if b.ndim == 1 else b.data
    product = x @ y

    def backward(g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        g = g.reshape(product.shape)
        ga = _unbroadcast(g @ np.swapaxes(y, -1, -2), x.shape).reshape(a.shape) if a.requires_grad else None
        gb = _unbroadcast(np.swapaxes(x, -1, -2) @ g, y.shape).reshape(b.shape) if b.requires_grad else None
        return ga, gb

    out = product
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return Tensor.from_op(out, (a, b), backward, "matmul")


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    tensors = list(tensors)
    bounds = np.cumsum([t.shape[axis] for t in tensors])[:-1]
    return Tensor.from_op(
        np.concatenate([t.data for t in tensors], axis=axis),
        tensors,
        lambda g: np.split(g, bounds, axis=axis),
        "concatenate",
    )


cat = concatenate


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    tensors = list(tensors)
    out = np.stack([t.data for t in tensors], axis=axis)
    return Tensor.from_op(
        out,
        tensors,
        lambda g: [np.take(g, i, axis=axis) for i in range(len(tensors))],
        "stack",
    )


def pad(x: Tensor, pad_width: Sequence[tuple[int, int]], value: float = 0.0) -> Tensor:
    """Constant padding, ``pad_width`` as in ``np.pad`` (one (before, after) pair per axis)."""
    pad_width = [tuple(p) for p in pad_width]
    if len(pad_width) != x.ndim:
        raise ValueError(f"pad needs {x.ndim} (before, after) pairs, got {len(pad_width)}")
    inner = tuple(slice(before, before + n) for (before, _), n in zip(pad_width, x.shape))
    return Tensor.from_op(
        np.pad(x.data, pad_width, constant_values=value),
        (x,),
        lambda g: (g[inner],),
        "pad",
    )


def where(condition: Any, a: Any, b: Any) -> Tensor:
    cond = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    if not isinstance(a, Tensor):
        a = Tensor(a, dtype=b.dtype if isinstance(b, Tensor) else None)
    b = a._lift(b)
    return Tensor.from_op(
        np.where(cond, a.data, b.data),
        (a, b),
        lambda g: (_unbroadcast(np.where(cond, g, 0), a.shape), _unbroadcast(np.where(cond, 0, g), b.shape)),
        "where",
    )


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (inverted dropout)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability must be in [0, 1], not {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    keep = _random.generator().random(x.shape, dtype=np.float32) >= p
    mask = keep.astype(x.dtype) * np.asarray(1 / (1 - p), x.dtype)
    return Tensor.from_op(x.data * mask, (x,), lambda g: (g * mask,), "dropout")


def exp(x: Tensor) -> Tensor:
    return x.exp()


def log(x: Tensor) -> Tensor:
    return x.log()


def sqrt(x: Tensor) -> Tensor:
    return x.sqrt()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def relu(x: Tensor) -> Tensor:
    return x.relu()


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    return x.gelu(approximate)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.softmax(axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.log_softmax(axis)

