"""In-place initialisers, drawing from seqdl's global generator (PyTorch's formulas)."""
from __future__ import annotations

import math

import numpy as np

from .. import random as _random
from ..tensor import Tensor


def uniform_(t: Tensor, low: float = 0.0, high: float = 1.0) -> Tensor:
    t.data[...] = _random.generator().uniform(low, high, t.shape)
    return t


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    t.data[...] = _random.generator().normal(mean, std, t.shape)
    return t


def fan_in(t: Tensor) -> int:
    """Inputs per output unit: ``in_features`` for Linear, ``in_channels * kernel`` for Conv."""
    return int(np.prod(t.shape[1:])) if t.ndim > 1 else t.shape[0]


def kaiming_uniform_(t: Tensor, a: float = 0.0) -> Tensor:
    gain = math.sqrt(2.0 / (1 + a * a))
    bound = gain * math.sqrt(3.0 / fan_in(t))
    return uniform_(t, -bound, bound)


def default_linear_init_(weight: Tensor, bias: Tensor | None) -> None:
    """PyTorch's default for Linear and Conv: kaiming_uniform(a=sqrt(5)), bias U(±1/sqrt(fan_in))."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1 / math.sqrt(fan_in(weight))
        uniform_(bias, -bound, bound)
