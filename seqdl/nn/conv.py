"""Convolution and pooling: im2col + one GEMM, written as loops over kernel positions.

For each kernel offset (ky, kx) the strided slice of the padded input that the
offset sees is copied into one plane of the column matrix (Chainer's
``im2col_cpu``), and the matrix products run on the whole batch at once.
Backward does the same in reverse (col2im adds each plane back at its offset).
The 1-D layers run through the 2-D code with a height of 1.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..tensor import DEFAULT_DTYPE, Tensor
from . import init
from .module import Module, Parameter

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]  # ((top, bottom), (left, right))


def _pair(value: int | Sequence[int], name: str) -> Pair:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair, not {value!r}")
    return int(pair[0]), int(pair[1])


def _out_size(size: int, kernel: int, stride: int, pad: tuple[int, int], dilation: int, ceil_mode: bool = False) -> int:
    span = size + pad[0] + pad[1] - dilation * (kernel - 1) - 1
    if span < 0:
        raise ValueError(f"kernel of extent {dilation * (kernel - 1) + 1} is larger than the padded input ({size + sum(pad)})")
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad[0]:
        out -= 1  # PyTorch: the last window must start inside the input or its left padding
    return out


def _window(offset: int, stride: int, count: int) -> slice:
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def _check_input(x: Tensor, ndim: int, channels: int, what: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{what} expects a {ndim}-D input (batch, channels, ...), got shape {x.shape}")
    if x.shape[1] != channels:
        raise ValueError(f"{what} expects {channels} input channels, got {x.shape[1]} (input shape {x.shape})")


def _padded(x: np.ndarray, padding: Padding, value: float) -> np.ndarray:
    """``x`` (N, C, H, W) with ``padding`` of ``value`` around H and W (``np.pad``'s result, with less overhead)."""
    (top, bottom), (left, right) = padding
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


# ------------------------------------------------------------------ conv
def _conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: Pair, padding: Padding, dilation: Pair) -> Tensor:
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"stride and dilation must be positive, got stride={stride}, dilation={dilation}")
    oh = _out_size(h, kh, stride[0], padding[0], dilation[0])
    ow = _out_size(w, kw, stride[1], padding[1], dilation[1])
    xp = _padded(x.data, padding, 0.0)

    # Columns laid out (kh, kw, C, N, oh*ow), so that each of the backward's two products is one GEMM over
    # the whole batch (the weight's gradient reads the columns transposed, in place) once the output's
    # gradient is copied to (O, N*oh*ow), which is smaller than the columns. The forward reads the same
    # columns image by image and so writes the NCHW output directly.
    col = np.empty((kh, kw, c, n, oh, ow), dtype=x.dtype)
    batch_major = xp.transpose(1, 0, 2, 3)
    for ky in range(kh):
        rows = _window(ky * dilation[0], stride[0], oh)
        for kx in range(kw):
            col[ky, kx] = batch_major[:, :, rows, _window(kx * dilation[1], stride[1], ow)]
    col = col.reshape(kh * kw * c, n * oh * ow)
    w2 = weight.data.transpose(0, 2, 3, 1).reshape(o, -1)
    out = np.matmul(w2, col.reshape(-1, n, oh * ow).transpose(1, 0, 2))  # (N, O, oh*ow): NCHW as it comes
    if bias is not None:
        out += bias.data[:, None]
    out = out.reshape(n, o, oh, ow)

    def backward(g: np.ndarray) -> tuple[np.ndarray | None, ...]:
        g2 = g.transpose(1, 0, 2, 3).reshape(o, n * oh * ow)   # a copy: (O, N, oh, ow) like the output
        gw = None
        if weight.requires_grad:
            gw = (g2 @ col.T).reshape(o, kh, kw, c).transpose(0, 3, 1, 2)
        gb = g2.sum(axis=1) if bias is not None and bias.requires_grad else None
        gx = None
        if x.requires_grad:
            dcol = (w2.T @ g2).reshape(kh, kw, c, n, oh, ow)
            dxp = np.zeros(xp.shape, dtype=x.dtype)
            dxp_batch_major = dxp.transpose(1, 0, 2, 3)
            for ky in range(kh):
                rows = _window(ky * dilation[0], stride[0], oh)
                for kx in range(kw):
                    dxp_batch_major[:, :, rows, _window(kx * dilation[1], stride[1], ow)] += dcol[ky, kx]
            (top, _), (left, _) = padding
            gx = dxp[:, :, top : top + h, left : left + w]
        return (gx, gw, gb) if bias is not None else (gx, gw)

    parents = (x, weight, bias) if bias is not None else (x, weight)
    return Tensor.from_op(out, parents, backward, "conv2d")


def _resolve_padding(padding: Any, kernel: Pair, dilation: Pair, stride: Pair) -> Padding:
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError("padding='same' needs stride 1")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)  # type: ignore[return-value]
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {padding}")
    return (ph, ph), (pw, pw)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch) of (N, C, H, W) with weight (O, C, kh, kw)."""
    if groups != 1:
        raise ValueError(f"only groups=1 is supported, got groups={groups}")
    _check_input(x, 4, weight.shape[1], "conv2d")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = _resolve_padding(padding, weight.shape[2:], dilation, stride)
    return _conv2d(x, weight, bias, stride, pads, dilation)


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1, padding: Any = 0,
           dilation: int = 1, groups: int = 1) -> Tensor:
    """1-D convolution of (N, C, L) with weight (O, C, k), through the 2-D code with height 1."""
    if groups != 1:
        raise ValueError(f"only groups=1 is supported, got groups={groups}")
    _check_input(x, 3, weight.shape[1], "conv1d")
    pads = _resolve_padding(padding if isinstance(padding, str) else (0, padding), (1, weight.shape[2]), (1, dilation), (1, stride))
    out = _conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride), pads, (1, dilation))
    return out.squeeze(2)


COLUMN_BYTES = 1 << 20  # one block of time-major columns: small enough to stay in cache


def conv1d_time_major(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, padding: int = 0,
                      dilation: int = 1) -> np.ndarray:
    """Inference-only stride-1 1-D convolution of a *time-major* (T, B, C) array -> (T', B, O), zeros padded.

    A recurrent layer downstream wants (T, B, C), where the rows of one step are
    contiguous: the columns of a block of steps are then k contiguous slices copied
    side by side, and the block goes through one GEMM while it is still in cache
    (about twice as fast as im2col over (B, C, T) and transposing, measured).
    """
    steps, batch, channels = x.shape
    out_channels, _, kernel = weight.shape
    length = steps + 2 * padding - dilation * (kernel - 1)
    matrix = np.ascontiguousarray(weight.transpose(2, 1, 0).reshape(kernel * channels, out_channels), x.dtype)
    out = np.empty((length, batch, out_channels), x.dtype)
    block = max(1, COLUMN_BYTES // (batch * kernel * channels * x.itemsize))
    columns = np.empty((block, batch, kernel, channels), x.dtype)
    for first in range(0, length, block):
        count = min(block, length - first)
        for tap in range(kernel):
            start = first + tap * dilation - padding  # the input step under the block's first row; rows that
            lo = min(max(0, -start), count)  # fall outside the input are the zero padding (no padded copy)
            hi = max(lo, min(count, steps - start))
            columns[:lo, :, tap] = 0
            columns[lo:hi, :, tap] = x[start + lo:start + hi]
            columns[hi:count, :, tap] = 0
        rows = out[first:first + count].reshape(count * batch, out_channels)
        np.matmul(columns[:count].reshape(count * batch, kernel * channels), matrix, out=rows)
        if bias is not None:
            rows += bias
    return out


# --------------------------------------------------------------- pooling
def _pool_geometry(shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair, ceil_mode: bool
                   ) -> tuple[int, int, Padding]:
    """Output size and the padding (incl. extra right/bottom padding that ceil_mode windows reach)."""
    h, w = shape[2:]
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"pool padding {padding} must be at most half the kernel size {kernel}")
    oh = _out_size(h, kernel[0], stride[0], (padding[0], padding[0]), 1, ceil_mode)
    ow = _out_size(w, kernel[1], stride[1], (padding[1], padding[1]), 1, ceil_mode)
    extra_h = max((oh - 1) * stride[0] + kernel[0] - h - 2 * padding[0], 0)
    extra_w = max((ow - 1) * stride[1] + kernel[1] - w - 2 * padding[1], 0)
    return oh, ow, ((padding[0], padding[0] + extra_h), (padding[1], padding[1] + extra_w))


def _valid_windows(offset: int, stride: int, count: int, size: int) -> int:
    """How many of ``count`` windows still have their element at ``offset`` inside ``size``."""
    return max(0, min(count, -(-(size - offset) // stride)))


def _max_pool2d(x: Tensor, kernel: Pair, stride: Pair, padding: Pair, ceil_mode: bool) -> Tensor:
    oh, ow, _ = _pool_geometry(x.shape, kernel, stride, padding, ceil_mode)
    # Explicit padding is -inf; ceil_mode windows that overhang simply see fewer elements.
    pads = ((padding[0], padding[0]), (padding[1], padding[1]))
    xp = _padded(x.data, pads, -np.inf)
    hp, wp = xp.shape[2:]
    offsets = []
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            nr, nc = _valid_windows(ky, stride[0], oh, hp), _valid_windows(kx, stride[1], ow, wp)
            offsets.append((nr, nc, _window(ky, stride[0], nr), _window(kx, stride[1], nc)))
    best = xp[:, :, offsets[0][2], offsets[0][3]].copy()  # offset (0, 0) covers every window
    for nr, nc, rows, cols in offsets[1:]:
        if nr and nc:
            np.maximum(best[:, :, :nr, :nc], xp[:, :, rows, cols], out=best[:, :, :nr, :nc])

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        from .pool_kernels import max_pool_backward  # numba: imported by the first training step that pools
        n, c, h, w = x.shape
        dx = np.zeros((n * c, h, w), x.dtype)
        max_pool_backward(np.ascontiguousarray(x.data).reshape(n * c, h, w), best.reshape(n * c, oh, ow),
                          np.ascontiguousarray(g, x.dtype).reshape(n * c, oh, ow), *kernel, *stride, *padding, dx)
        return (dx.reshape(x.shape),)

    return Tensor.from_op(best, (x,), backward, "max_pool2d")


def _avg_pool2d(x: Tensor, kernel: Pair, stride: Pair, padding: Pair, ceil_mode: bool, count_include_pad: bool) -> Tensor:
    oh, ow, pads = _pool_geometry(x.shape, kernel, stride, padding, ceil_mode)
    xp = _padded(x.data, pads, 0.0)
    # How many elements each window averages: PyTorch counts the symmetric padding
    # (if count_include_pad) but never the extra cells that ceil_mode windows overhang.
    counted = np.zeros(xp.shape[2:], dtype=x.dtype)
    h, w = x.shape[2:]
    if count_include_pad:
        counted[: h + 2 * padding[0], : w + 2 * padding[1]] = 1
    else:
        counted[padding[0] : padding[0] + h, padding[1] : padding[1] + w] = 1
    total = np.zeros((x.shape[0], x.shape[1], oh, ow), dtype=x.dtype)
    divisor = np.zeros((oh, ow), dtype=x.dtype)
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            rows, cols = _window(ky, stride[0], oh), _window(kx, stride[1], ow)
            total += xp[:, :, rows, cols]
            divisor += counted[rows, cols]
    out = total / divisor

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        share = g / divisor
        dxp = np.zeros(xp.shape, dtype=x.dtype)
        for ky in range(kernel[0]):
            for kx in range(kernel[1]):
                dxp[:, :, _window(ky, stride[0], oh), _window(kx, stride[1], ow)] += share
        (top, _), (left, _) = pads
        return (dxp[:, :, top : top + h, left : left + w],)

    return Tensor.from_op(out, (x,), backward, "avg_pool2d")


def _pool_args(kernel_size: Any, stride: Any, padding: Any) -> tuple[Pair, Pair, Pair]:
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _pair(stride, "stride")
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"kernel_size and stride must be positive, got {kernel} and {stride}")
    return kernel, stride, _pair(padding, "padding")


def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False) -> Tensor:
    if x.ndim != 4:
        raise ValueError(f"max_pool2d expects (N, C, H, W) input, got shape {x.shape}")
    return _max_pool2d(x, *_pool_args(kernel_size, stride, padding), ceil_mode)


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    if x.ndim != 4:
        raise ValueError(f"avg_pool2d expects (N, C, H, W) input, got shape {x.shape}")
    return _avg_pool2d(x, *_pool_args(kernel_size, stride, padding), ceil_mode, count_include_pad)


def _as_2d_args(kernel_size: int, stride: int | None, padding: int) -> tuple[Pair, Pair | None, Pair]:
    return (1, kernel_size), (None if stride is None else (1, stride)), (0, padding)


def max_pool1d(x: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0, ceil_mode: bool = False) -> Tensor:
    if x.ndim != 3:
        raise ValueError(f"max_pool1d expects (N, C, L) input, got shape {x.shape}")
    return max_pool2d(x.unsqueeze(2), *_as_2d_args(kernel_size, stride, padding), ceil_mode).squeeze(2)


def avg_pool1d(x: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    if x.ndim != 3:
        raise ValueError(f"avg_pool1d expects (N, C, L) input, got shape {x.shape}")
    out = avg_pool2d(x.unsqueeze(2), *_as_2d_args(kernel_size, stride, padding), ceil_mode, count_include_pad)
    return out.squeeze(2)


# --------------------------------------------------------------- modules
class _ConvNd(Module):
    dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros") -> None:
        super().__init__()
        if groups != 1:
            raise ValueError(f"only groups=1 is supported, got groups={groups}")
        if padding_mode != "zeros":
            raise ValueError(f"only padding_mode='zeros' is supported, got {padding_mode!r}")
        kernel = (kernel_size,) * self.dims if isinstance(kernel_size, int) else tuple(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = Parameter(np.empty((out_channels, in_channels, *kernel), DEFAULT_DTYPE))
        self.register_parameter("bias", Parameter(np.empty(out_channels, DEFAULT_DTYPE)) if bias else None)
        init.default_linear_init_(self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}")


class Conv2d(_ConvNd):
    dims = 2

    def forward(self, x: Tensor) -> Tensor:
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


class Conv1d(_ConvNd):
    dims = 1

    def forward(self, x: Tensor) -> Tensor:
        return conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


class _PoolNd(Module):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, ceil_mode={self.ceil_mode}"


class MaxPool2d(_PoolNd):
    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)


class MaxPool1d(_PoolNd):
    def forward(self, x: Tensor) -> Tensor:
        return max_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)


class AvgPool2d(_PoolNd):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


class AvgPool1d(AvgPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


__all__ = [
    "conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
    "Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d",
]
