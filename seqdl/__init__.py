"""seqdl: a NumPy deep-learning core (autograd, layers, optimizers, checkpoints)."""
__version__ = "0.1.0"

from . import nn, optim
from .checkpoint import Checkpoint, load, save
from .errors import CheckpointError, SeqdlError
from .random import get_rng_state, manual_seed, set_rng_state
from .tensor import (
    Tensor, cat, concatenate, dropout, is_grad_enabled, matmul, no_grad, ones, pad, randn, stack, tensor, where,
    zeros,
)

__all__ = [
    "__version__", "nn", "optim", "Tensor", "tensor", "no_grad", "is_grad_enabled", "zeros", "ones", "randn",
    "matmul", "cat", "concatenate", "stack", "pad", "where", "dropout", "save", "load", "Checkpoint",
    "manual_seed", "get_rng_state", "set_rng_state", "SeqdlError", "CheckpointError",
]
