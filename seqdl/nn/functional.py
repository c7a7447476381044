"""Stateless forms of the layers and the losses (``seqdl.nn.functional``, as ``torch.nn.functional``).

Losses and normalisations are single fused ops with explicit backward: one
graph node each, and no intermediate softmax kept twice.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..tensor import (
    Tensor,
    dropout,
    gelu,
    log_softmax,
    log_softmax_array,
    relu,
    sigmoid,
    sigmoid_array,
    softmax,
    tanh,
)

from .conv import avg_pool1d, avg_pool2d, conv1d, conv2d, max_pool1d, max_pool2d
from .recurrent import gru_layer, lstm_layer

__all__ = [
    "gru_layer", "lstm_layer", "conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
    "linear", "embedding", "layer_norm", "batch_norm",
    "cross_entropy", "nll_loss", "binary_cross_entropy_with_logits", "mse_loss",
    "dropout", "gelu", "relu", "sigmoid", "tanh", "softmax", "log_softmax",
]


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` over any leading batch axes, as one GEMM forward and two backward."""
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1]} features, weight expects {weight.shape[1]}")
    flat = x.data.reshape(-1, x.shape[-1])
    out = flat @ weight.data.T
    if bias is not None:
        out += bias.data

    def backward(g: np.ndarray) -> tuple[np.ndarray | None, ...]:
        g2 = g.reshape(-1, g.shape[-1])
        gx = (g2 @ weight.data).reshape(x.shape) if x.requires_grad else None
        gw = g2.T @ flat if weight.requires_grad else None
        gb = g2.sum(axis=0) if bias is not None and bias.requires_grad else None
        return gx, gw, gb

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.from_op(out.reshape(*x.shape[:-1], -1), parents, backward, "linear")


def _index_array(indices: Any, what: str) -> np.ndarray:
    array = np.asarray(indices.data if isinstance(indices, Tensor) else indices)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integers, not {array.dtype}")
    return array


def embedding(indices: Any, weight: Tensor) -> Tensor:
    """Rows of ``weight`` picked by integer ``indices`` (any shape); output shape ``indices.shape + (dim,)``."""
    idx = _index_array(indices, "embedding indices")
    if idx.size and (idx.min() < 0 or idx.max() >= weight.shape[0]):
        raise IndexError(f"embedding index out of range [0, {weight.shape[0]}): min {idx.min()}, max {idx.max()}")

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        grad = np.zeros_like(weight.data)
        np.add.at(grad, idx.reshape(-1), g.reshape(-1, weight.shape[1]))
        return (grad,)

    return Tensor.from_op(weight.data[idx], (weight,), backward, "embedding")


def _normalize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    return centred * inv_std, inv_std


def _normalize_backward(g_hat: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Gradient through ``(x - mean) / std`` given the gradient w.r.t. the normalised values."""
    return inv_std * (
        g_hat - g_hat.mean(axis=axes, keepdims=True) - x_hat * (g_hat * x_hat).mean(axis=axes, keepdims=True)
    )


def layer_norm(
    x: Tensor, normalized_shape: tuple[int, ...], weight: Tensor | None = None, bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    if tuple(x.shape[x.ndim - len(normalized_shape):]) != tuple(normalized_shape):
        raise ValueError(f"layer_norm: input shape {x.shape} does not end in {tuple(normalized_shape)}")
    x_hat, inv_std = _normalize(x.data, axes, eps)
    out = x_hat if weight is None else x_hat * weight.data
    if bias is not None:
        out = out + bias.data
    lead = tuple(range(x.ndim - len(normalized_shape)))

    def backward(g: np.ndarray) -> tuple[np.ndarray | None, ...]:
        g_hat = g if weight is None else g * weight.data
        gx = _normalize_backward(g_hat, x_hat, inv_std, axes)
        gw = (g * x_hat).sum(axis=lead) if weight is not None else None
        gb = g.sum(axis=lead) if bias is not None else None
        return gx, gw, gb

    parents = tuple(t for t in (x, weight, bias) if t is not None)
    wrapped = backward if len(parents) == 3 else _select(backward, (True, weight is not None, bias is not None))
    return Tensor.from_op(out, parents, wrapped, "layer_norm")


def _select(backward: Any, present: tuple[bool, ...]) -> Any:
    """Drop the gradients of absent optional parents from a backward that returns all of them."""
    return lambda g: tuple(grad for grad, keep in zip(backward(g), present) if keep)


def batch_norm(
    x: Tensor, running_mean: np.ndarray | None, running_var: np.ndarray | None,
    weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
    momentum: float = 0.1, eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over axis 1 (channels) of (N, C) or (N, C, ...) input.

    In training the batch statistics are used and the running ones updated in
    place (unbiased variance, as PyTorch); in eval the running ones are used.
    """
    if training:
        out, backward = _batch_norm_training(x, running_mean, running_var, weight, bias, momentum, eps)
    else:
        out, backward = _batch_norm_eval(x, running_mean, running_var, weight, bias, eps)
    parents = tuple(t for t in (x, weight, bias) if t is not None)
    wrapped = backward if len(parents) == 3 else _select(backward, (True, weight is not None, bias is not None))
    return Tensor.from_op(out, parents, wrapped, "batch_norm")


Backward = Callable[[np.ndarray], tuple[np.ndarray | None, ...]]


def _batch_norm_eval(x: Tensor, running_mean: np.ndarray, running_var: np.ndarray, weight: Tensor | None,
                     bias: Tensor | None, eps: float) -> tuple[np.ndarray, Backward]:
    """The running statistics: an affine map per channel."""
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    inv_std = (1.0 / np.sqrt(running_var + eps)).reshape(shape).astype(x.dtype)
    x_hat = (x.data - running_mean.reshape(shape)) * inv_std
    w = weight.data.reshape(shape) if weight is not None else None
    out = x_hat if w is None else x_hat * w
    if bias is not None:
        out = out + bias.data.reshape(shape)
    axes = (0,) + tuple(range(2, x.ndim))

    def backward(g: np.ndarray) -> tuple[np.ndarray | None, ...]:
        gx = (g if w is None else g * w) * inv_std
        gw = (g * x_hat).sum(axis=axes) if weight is not None else None
        gb = g.sum(axis=axes) if bias is not None else None
        return gx, gw, gb

    return out.astype(x.dtype, copy=False), backward


def _batch_norm_training(x: Tensor, running_mean: np.ndarray | None, running_var: np.ndarray | None,
                         weight: Tensor | None, bias: Tensor | None, momentum: float, eps: float
                         ) -> tuple[np.ndarray, Backward]:
    """Batch statistics, the running ones updated in place; the maths is in :mod:`seqdl.nn.norm_kernels`."""
    from .norm_kernels import batch_norm_backward, batch_norm_forward  # numba: imported by the first such step
    dtype, channels = x.dtype, x.shape[1]
    x3 = np.ascontiguousarray(x.data).reshape(x.shape[0], channels, -1)
    w = weight.data if weight is not None else np.ones(channels, dtype)
    b = bias.data if bias is not None else np.zeros(channels, dtype)
    out, x_hat = np.empty_like(x3), np.empty_like(x3)
    mean, var, inv_std = np.empty(channels), np.empty(channels), np.empty(channels)
    batch_norm_forward(x3, w, b, eps, out, x_hat, mean, var, inv_std)
    if running_mean is not None:
        n = x3.shape[0] * x3.shape[2]
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * (n / max(n - 1, 1))

    def backward(g: np.ndarray) -> tuple[np.ndarray | None, ...]:
        gx, gw, gb = np.empty_like(x3), np.empty(channels, dtype), np.empty(channels, dtype)
        batch_norm_backward(np.ascontiguousarray(g, dtype).reshape(x3.shape), x_hat, w, inv_std, gx, gw, gb)
        return gx.reshape(x.shape), gw, gb

    return out.reshape(x.shape), backward


# ------------------------------------------------------------------ losses
def _reduce(losses: np.ndarray, reduction: str, count: float) -> tuple[np.ndarray, Any]:
    """Apply ``reduction``; also return the factor that scales the upstream gradient per element."""
    if reduction == "mean":
        return np.asarray(losses.sum() / max(count, 1), losses.dtype), 1.0 / max(count, 1)
    if reduction == "sum":
        return np.asarray(losses.sum(), losses.dtype), 1.0
    if reduction == "none":
        return losses, None
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")


def _classes_last(x: np.ndarray) -> np.ndarray:
    """(N, C, d1, ...) -> (N, d1, ..., C): PyTorch puts classes on axis 1."""
    return np.moveaxis(x, 1, -1) if x.ndim > 2 else x


def _classes_back(x: np.ndarray, ndim: int) -> np.ndarray:
    return np.moveaxis(x, -1, 1) if ndim > 2 else x


def _check_targets(logits_shape: tuple[int, ...], target: np.ndarray, ignore_index: int) -> np.ndarray:
    expected = (logits_shape[0],) + tuple(logits_shape[2:]) if len(logits_shape) > 1 else ()
    if target.shape != expected:
        raise ValueError(f"target shape {target.shape} does not match input shape {logits_shape} (expected {expected})")
    n_classes = logits_shape[1] if len(logits_shape) > 1 else logits_shape[0]
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= n_classes))
    if bad.any():
        raise IndexError(f"target {target[bad].flat[0]} is out of range for {n_classes} classes")
    return valid


def cross_entropy(
    input: Tensor, target: Any, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy from logits (N, C) or (N, C, d1, ...) and integer targets, fused.

    With ``label_smoothing`` ε the target distribution is (1-ε)·onehot + ε/C, as in PyTorch.
    """
    target = _index_array(target, "cross_entropy targets")
    valid = _check_targets(input.shape, target, ignore_index)
    logits = _classes_last(input.data)
    n_classes = logits.shape[-1]
    logp = log_softmax_array(logits, axis=-1)
    safe = np.where(valid, target, 0)
    picked = np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    losses = -(1 - label_smoothing) * picked
    if label_smoothing:
        losses = losses - label_smoothing / n_classes * logp.sum(axis=-1)
    losses = np.where(valid, losses, 0).astype(logp.dtype)
    out, scale = _reduce(losses, reduction, float(valid.sum()))

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        grad = np.exp(logp)
        if label_smoothing:
            grad -= label_smoothing / n_classes
        np.put_along_axis(grad, safe[..., None], np.take_along_axis(grad, safe[..., None], -1) - (1 - label_smoothing), -1)
        weight = valid * (g if scale is None else g * scale)
        grad *= np.asarray(weight, grad.dtype)[..., None]
        return (_classes_back(grad, input.ndim),)

    return Tensor.from_op(out, (input,), backward, "cross_entropy")


def nll_loss(input: Tensor, target: Any, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood from log-probabilities (N, C) or (N, C, d1, ...)."""
    target = _index_array(target, "nll_loss targets")
    valid = _check_targets(input.shape, target, ignore_index)
    logp = _classes_last(input.data)
    safe = np.where(valid, target, 0)
    losses = np.where(valid, -np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0], 0).astype(logp.dtype)
    out, scale = _reduce(losses, reduction, float(valid.sum()))

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        grad = np.zeros_like(logp)
        weight = valid * (g if scale is None else g * scale)
        np.put_along_axis(grad, safe[..., None], -np.asarray(weight, grad.dtype)[..., None], -1)
        return (_classes_back(grad, input.ndim),)

    return Tensor.from_op(out, (input,), backward, "nll_loss")


def binary_cross_entropy_with_logits(
    input: Tensor, target: Any, reduction: str = "mean", pos_weight: Any = None,
) -> Tensor:
    """Numerically stable sigmoid + binary cross-entropy; ``target`` holds probabilities."""
    y = np.asarray(target.data if isinstance(target, Tensor) else target, dtype=input.dtype)
    if y.shape != input.shape:
        raise ValueError(f"target shape {y.shape} does not match input shape {input.shape}")
    x = input.data
    log_sig_neg = np.logaddexp(0, -x)  # -log(sigmoid(x))
    if pos_weight is None:
        losses = (1 - y) * x + log_sig_neg
    else:
        pw = np.asarray(pos_weight, x.dtype)
        losses = (1 - y) * x + (1 + (pw - 1) * y) * log_sig_neg
    out, scale = _reduce(losses.astype(x.dtype), reduction, float(x.size))

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        s = sigmoid_array(x)
        grad = s - y if pos_weight is None else (1 - y) - (1 + (pw - 1) * y) * (1 - s)
        return ((grad * (g if scale is None else g * scale)).astype(x.dtype),)

    return Tensor.from_op(out, (input,), backward, "bce_with_logits")


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    y = target.data if isinstance(target, Tensor) else np.asarray(target, dtype=input.dtype)
    if y.shape != input.shape:
        raise ValueError(f"target shape {y.shape} does not match input shape {input.shape}")
    diff = input.data - y
    out, scale = _reduce(diff * diff, reduction, float(diff.size))

    def backward(g: np.ndarray) -> tuple[np.ndarray | None, ...]:
        grad = 2 * diff * (g if scale is None else g * scale)
        return grad, (-grad if isinstance(target, Tensor) else None)

    parents = (input, target) if isinstance(target, Tensor) else (input,)
    return Tensor.from_op(out, parents, backward, "mse_loss")
