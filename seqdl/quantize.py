"""Weight quantisation: int8 per output channel, or 4-bit groupwise with two values per byte.

Only weight matrices and kernels (parameters named ``weight*`` with two or more
dimensions: Linear, Conv, Embedding, RNN) are quantised; biases and
normalisation parameters stay float32. Both schemes are symmetric: a float
scale per output row (int8) or per group of ``group_size`` consecutive inputs
of a row (4-bit), and ``w ≈ q * scale``, so the error of each weight is at most
half a step. Files are safetensors (``<name>.q`` + ``<name>.scale``) with the
scheme in the header; :func:`seqdl.checkpoint.load` dequantises them on load.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .checkpoint import load, save, write_safetensors
from .nn.module import Module

QUANTIZATION_KEY = "seqdl.quantization"


def is_quantizable(name: str, array: np.ndarray) -> bool:
    return name.rsplit(".", 1)[-1].startswith("weight") and array.ndim >= 2 and array.dtype.kind == "f"


def quantize_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8: returns ``(q (rows, cols) int8, scale (rows,) float32)``."""
    rows = w.reshape(w.shape[0], -1).astype(np.float32)
    scale = np.abs(rows).max(axis=1) / 127
    scale[scale == 0] = 1  # an all-zero row: any scale reproduces it exactly
    q = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def dequantize_int8(q: np.ndarray, scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return (q.astype(np.float32) * scale[:, None]).reshape(shape)


def quantize_int4(w: np.ndarray, group_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Groupwise symmetric 4-bit: values in [-7, 7] stored as q + 8, two per byte (low nibble first).

    Returns ``(packed (rows, groups * group_size / 2) uint8, scale (rows, groups) float32)``;
    each row is zero-padded to a whole number of groups.
    """
    rows = w.reshape(w.shape[0], -1).astype(np.float32)
    groups = -(-rows.shape[1] // group_size)
    padded = np.zeros((rows.shape[0], groups * group_size), np.float32)
    padded[:, : rows.shape[1]] = rows
    grouped = padded.reshape(rows.shape[0], groups, group_size)
    scale = np.abs(grouped).max(axis=2) / 7
    scale[scale == 0] = 1
    q = (np.clip(np.rint(grouped / scale[..., None]), -7, 7) + 8).astype(np.uint8).reshape(rows.shape[0], -1)
    return q[:, 0::2] | (q[:, 1::2] << 4), scale.astype(np.float32)


def dequantize_int4(packed: np.ndarray, scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    rows, groups = scale.shape
    q = np.empty((rows, packed.shape[1] * 2), np.float32)
    q[:, 0::2] = packed & 0x0F
    q[:, 1::2] = packed >> 4
    q -= 8
    values = (q.reshape(rows, groups, -1) * scale[..., None]).reshape(rows, -1)
    return values[:, : int(np.prod(shape[1:]))].reshape(shape)


def quantize_state(state: dict[str, np.ndarray], bits: int = 8, group_size: int = 64
                   ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Tensors to store and the header entry describing how to undo it."""
    if bits not in (8, 4):
        raise ValueError(f"bits must be 8 or 4, not {bits}")
    tensors: dict[str, np.ndarray] = {}
    quantized: dict[str, list[int]] = {}
    for name, array in state.items():
        if not is_quantizable(name, array):
            tensors[name] = array
            continue
        q, scale = quantize_int8(array) if bits == 8 else quantize_int4(array, group_size)
        tensors[f"{name}.q"], tensors[f"{name}.scale"] = q, scale
        quantized[name] = list(array.shape)
    return tensors, {"bits": bits, "group_size": group_size, "tensors": quantized}


def dequantize_state(tensors: dict[str, np.ndarray], info: dict[str, Any]) -> dict[str, np.ndarray]:
    state = {}
    quantized = info["tensors"]
    dequantize = dequantize_int8 if info["bits"] == 8 else dequantize_int4
    for name, array in tensors.items():
        if name.endswith((".q", ".scale")) and name.rsplit(".", 1)[0] in quantized:
            continue
        state[name] = array
    for name, shape in quantized.items():
        state[name] = dequantize(tensors[f"{name}.q"], tensors[f"{name}.scale"], tuple(shape))
    return state


def save_quantized(path: str | os.PathLike, model: Module, bits: int = 8, group_size: int = 64,
                   kind: str | None = None, config: dict[str, Any] | None = None,
                   metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` with quantised weights; :func:`seqdl.load` returns dequantised float32 weights."""
    tensors, info = quantize_state(dict(model.state_dict()), bits, group_size)
    header = {QUANTIZATION_KEY: json.dumps(info), **{k: v if isinstance(v, str) else json.dumps(v)
                                                    for k, v in (metadata or {}).items()}}
    return write_safetensors(path, tensors, header, kind=kind, config=config)


def load_quantized(path: str | os.PathLike, model: Module) -> Module:
    """Load a (quantised or plain) model file into ``model``, dequantising the weights."""
    load(path).restore(model)
    return model


def quantization_report(model: Module, bits: int, evaluate: Callable[[Module], float],
                        group_size: int = 64) -> dict[str, float]:
    """Size on disk (float32 vs quantised) and ``evaluate``'s metric before and after quantisation."""
    with tempfile.TemporaryDirectory() as tmp:
        plain = save(Path(tmp) / "float32.safetensors", model)
        small = save_quantized(Path(tmp) / f"int{bits}.safetensors", model, bits, group_size)
        copy_model = load_quantized(small, copy.deepcopy(model))
        plain_bytes, small_bytes = plain.stat().st_size, small.stat().st_size
    before, after = evaluate(model), evaluate(copy_model)
    return {"bits": bits, "float32_bytes": plain_bytes, "quantized_bytes": small_bytes,
            "size_ratio": plain_bytes / small_bytes, "metric_before": before, "metric_after": after,
            "metric_change": after - before}
