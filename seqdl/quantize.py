"""Weight quantisation: int8 per output channel, or 4-bit groupwise with two values per byte.

Only weight matrices and kernels are quantised: parameters named ``weight*``
with two or more dimensions and at least ``min_elements`` values (Linear, Conv,
Embedding, GRU/LSTM ``weight_ih_l0``...). Biases, normalisation parameters and
small tensors stay float32: they are a tiny part of the file and the most
sensitive to error.

Both schemes are symmetric (no zero point), so ``w ≈ q * scale`` and every
weight is off by at most half a step:

- 8 bits: one float32 scale per output channel (row), ``q`` int8 in [-127, 127];
- 4 bits: one float32 scale per group of ``group_size`` consecutive inputs of a
  row (the row zero-padded to whole groups), ``q`` in [-7, 7] stored as
  ``q + 8`` in a nibble, two per uint8, low nibble first.

Files are safetensors: ``<name>.q`` (int8 / uint8, shape ``(rows, ...)``) and
``<name>.scale`` (float32) per quantised weight, other tensors as usual, and a
``seqdl.quantization`` header entry (JSON: scheme, bits, group size, original
shapes). :func:`seqdl.checkpoint.load` dequantises them, so a quantised model
loads wherever a float one does; PyTorch cannot load them directly.
"""
from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .checkpoint import QUANTIZATION, STEP, load, save, write_safetensors
from .nn.module import Module

__all__ = ["quantize_int8", "dequantize_int8", "quantize_int4", "dequantize_int4", "quantize_state",
           "dequantize_state", "save_quantized", "load_quantized", "quantize_file", "quantization_report"]

SCHEMES = {
    8: "symmetric int8 per output channel: w = q * scale[row]",
    4: "symmetric 4-bit per group of group_size inputs: w = (nibble - 8) * scale[row, group], "
       "two nibbles per uint8, low first",
}


def is_quantizable(name: str, array: np.ndarray, min_elements: int = 1024) -> bool:
    """Whether a state-dict entry is a weight matrix or kernel worth quantising."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf.startswith("weight") and array.ndim >= 2 and array.dtype.kind == "f" and array.size >= min_elements


def _rows(w: np.ndarray) -> np.ndarray:
    """The weight as (output channels, everything else) in float32."""
    return w.reshape(w.shape[0], -1).astype(np.float32, copy=False)


def _scales(max_abs: np.ndarray, q_max: int) -> np.ndarray:
    scale = (max_abs / q_max).astype(np.float32)
    scale[scale == 0] = 1  # an all-zero row or group: any scale reproduces it exactly
    return scale


def quantize_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8: ``(q (rows, cols) int8, scale (rows,) float32)``."""
    rows = _rows(w)
    scale = _scales(np.abs(rows).max(axis=1), 127)
    q = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def dequantize_int8(q: np.ndarray, scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return (q.astype(np.float32) * scale[:, None]).reshape(shape)


def quantize_int4(w: np.ndarray, group_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Groupwise symmetric 4-bit: ``(packed (rows, groups * group_size // 2) uint8, scale (rows, groups) float32)``."""
    if group_size < 2 or group_size % 2:
        raise ValueError(f"group_size must be an even number >= 2, not {group_size}")
    rows = _rows(w)
    groups = -(-rows.shape[1] // group_size)
    padded = np.zeros((rows.shape[0], groups * group_size), np.float32)
    padded[:, : rows.shape[1]] = rows
    grouped = padded.reshape(rows.shape[0], groups, group_size)
    scale = _scales(np.abs(grouped).max(axis=2), 7)
    q = (np.clip(np.rint(grouped / scale[..., None]), -7, 7) + 8).astype(np.uint8).reshape(rows.shape[0], -1)
    return q[:, 0::2] | (q[:, 1::2] << 4), scale


def dequantize_int4(packed: np.ndarray, scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    rows, groups = scale.shape
    q = np.empty((rows, packed.shape[1] * 2), np.float32)
    q[:, 0::2] = packed & 0x0F
    q[:, 1::2] = packed >> 4
    q -= 8
    values = (q.reshape(rows, groups, -1) * scale[..., None]).reshape(rows, -1)
    return values[:, : math.prod(shape[1:])].reshape(shape)


def quantize_state(state: Mapping[str, np.ndarray], bits: int = 8, group_size: int = 64, min_elements: int = 1024
                   ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The tensors to store and the header entry that says how to undo the quantisation."""
    if bits not in SCHEMES:
        raise ValueError(f"bits must be 8 or 4, not {bits}")
    tensors: dict[str, np.ndarray] = {}
    shapes: dict[str, list[int]] = {}
    for name, array in state.items():
        if not is_quantizable(name, array, min_elements):
            tensors[name] = array
            continue
        q, scale = quantize_int8(array) if bits == 8 else quantize_int4(array, group_size)
        tensors[f"{name}.q"], tensors[f"{name}.scale"] = q, scale
        shapes[name] = list(array.shape)
    info: dict[str, Any] = {"scheme": SCHEMES[bits], "bits": bits, "tensors": shapes}
    if bits == 4:
        info["group_size"] = group_size
    return tensors, info


def dequantize_state(tensors: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Float32 state dict from what :func:`quantize_state` stored."""
    shapes = info["tensors"]
    dequantize = dequantize_int8 if info["bits"] == 8 else dequantize_int4
    stored = {f"{name}{suffix}" for name in shapes for suffix in (".q", ".scale")}
    state = {name: array for name, array in tensors.items() if name not in stored}
    for name, shape in shapes.items():
        state[name] = dequantize(tensors[f"{name}.q"], tensors[f"{name}.scale"], tuple(shape))
    return state


def save_quantized(path: str | os.PathLike, model: Module, bits: int = 8, group_size: int = 64,
                   min_elements: int = 1024, kind: str | None = None, config: dict[str, Any] | None = None,
                   metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` with quantised weights atomically; :func:`seqdl.load` gives back float32 weights."""
    tensors, info = quantize_state(model.state_dict(), bits, group_size, min_elements)
    return write_safetensors(path, tensors, kind=kind, config=config, metadata=metadata,
                             entries={QUANTIZATION: json.dumps(info)})


def quantize_file(source: str | os.PathLike, target: str | os.PathLike, bits: int = 8, group_size: int = 64,
                  min_elements: int = 1024) -> Path:
    """A model file with quantised weights: kind, config, step and metadata kept, optimizer state dropped.

    This is how a trained model becomes small enough to ship; the source may be
    any seqdl model or training checkpoint (of any kind).
    """
    saved = load(source)
    tensors, info = quantize_state(saved.state_dict, bits, group_size, min_elements)
    entries = {QUANTIZATION: json.dumps(info)}
    if saved.step is not None:
        entries[STEP] = str(saved.step)
    return write_safetensors(target, tensors, kind=saved.kind, config=saved.config, metadata=saved.metadata,
                             entries=entries)


def load_quantized(path: str | os.PathLike, model: Module, kind: str | None = None) -> Module:
    """Load a quantised (or plain) model file into ``model``, dequantising the weights; returns ``model``."""
    load(path, model, kind=kind)
    return model


def quantization_report(model: Module, bits: int, evaluate: Callable[[Module], float],
                        path: str | os.PathLike | None = None, group_size: int = 64,
                        min_elements: int = 1024) -> dict[str, Any]:
    """Size on disk (float32 vs quantised) and ``evaluate``'s metric before and after quantisation.

    The quantised file is written to ``path`` (kept) or to a temporary file;
    the float32 size is measured with a temporary file. ``model`` is not changed:
    the metric after is measured on a dequantised copy.
    """
    with tempfile.TemporaryDirectory() as tmp:
        plain = save(Path(tmp) / "float32.safetensors", model)
        target = path if path is not None else Path(tmp) / f"int{bits}.safetensors"
        small = save_quantized(target, model, bits, group_size, min_elements)
        dequantized = load_quantized(small, copy.deepcopy(model))
        plain_bytes, small_bytes = plain.stat().st_size, small.stat().st_size
    before, after = float(evaluate(model)), float(evaluate(dequantized))
    report: dict[str, Any] = {"bits": bits, "float32_bytes": plain_bytes, "quantized_bytes": small_bytes,
                              "size_ratio": plain_bytes / small_bytes, "metric_before": before,
                              "metric_after": after, "metric_change": after - before}
    if bits == 4:
        report["group_size"] = group_size
    if path is not None:
        report["path"] = str(path)
    return report
