"""Models and training checkpoints as safetensors files, never pickle.

Layout of a file:

- model tensors under their PyTorch names (``model.state_dict()``), so a file
  saved without an optimizer loads into the same PyTorch module with
  ``safetensors.torch.load_file`` + ``load_state_dict``;
- optimizer state tensors under ``optimizer/<param index>/<name>`` (a PyTorch
  user drops them with ``{k: v for k, v in d.items() if not k.startswith("optimizer/")}``);
- the JSON header's ``__metadata__`` (string values): ``seqdl.kind``,
  ``seqdl.version``, ``seqdl.config`` (JSON), ``seqdl.step``, ``seqdl.optimizer``
  (hyper-parameters and scalar state), ``seqdl.scheduler``, ``seqdl.rng``, and
  whatever the caller adds (``seqdl.vocab``, ``seqdl.classes``, model card keys).

Before anything is loaded the header is parsed and checked (size, offsets,
dtypes), so a corrupt or hostile file is refused before any large allocation.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from . import __version__
from . import random as _random
from .errors import CheckpointError
from .io import atomic_path, sha256_file
from .nn.module import Module

OPTIMIZER_PREFIX = "optimizer/"
MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPE_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4,
                "F32": 4, "I64": 8, "U64": 8, "F64": 8}


@dataclass
class Checkpoint:
    """What :func:`load` read from a file."""

    path: Path
    kind: str | None
    version: str | None
    config: dict[str, Any]
    state_dict: dict[str, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)
    step: int | None = None
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    rng_state: dict[str, Any] | None = None

    def restore(self, model: Module, optimizer: Any = None, scheduler: Any = None) -> None:
        """Load the weights (strict names and shapes) and, if given, optimizer and scheduler state."""
        try:
            model.load_state_dict(self.state_dict)
        except ValueError as exc:
            raise CheckpointError(f"does not fit this model: {exc}", str(self.path)) from None
        if optimizer is not None:
            if self.optimizer_state is None:
                raise CheckpointError("holds no optimizer state (it is a model file, not a training checkpoint)",
                                      str(self.path))
            try:
                optimizer.load_state_dict(self.optimizer_state)
            except (ValueError, KeyError, IndexError) as exc:
                raise CheckpointError(f"optimizer state does not fit: {exc}", str(self.path)) from None
        if scheduler is not None and self.scheduler_state is not None:
            scheduler.load_state_dict(self.scheduler_state)


def _contiguous(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array of the same shape (``np.ascontiguousarray`` would turn 0-d into 1-d)."""
    return array if array.flags.c_contiguous else array.copy(order="C")


def _encode(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def save(path: str | os.PathLike, model: Module, optimizer: Any = None, step: int | None = None,
         config: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None, kind: str | None = None,
         scheduler: Any = None, save_rng: bool = False) -> Path:
    """Write ``model`` (and optional training state) to ``path`` atomically; return the path."""
    tensors = dict(model.state_dict())
    header: dict[str, str] = {}
    if step is not None:
        header["seqdl.step"] = str(int(step))
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, values in state["state"].items():
            for name, value in values.items():
                if isinstance(value, np.ndarray):
                    tensors[f"{OPTIMIZER_PREFIX}{index}/{name}"] = value
                else:
                    scalars.setdefault(str(index), {})[name] = value
        header["seqdl.optimizer"] = json.dumps({"param_groups": state["param_groups"], "scalars": scalars})
    if scheduler is not None:
        header["seqdl.scheduler"] = json.dumps(scheduler.state_dict())
    if save_rng:
        header["seqdl.rng"] = json.dumps(_random.get_rng_state())
    for key, value in (metadata or {}).items():
        header[key] = _encode(value)
    return write_safetensors(path, tensors, header, kind=kind, config=config)


def write_safetensors(path: str | os.PathLike, tensors: dict[str, np.ndarray], header: dict[str, str],
                      kind: str | None = None, config: dict[str, Any] | None = None) -> Path:
    """Write tensors and string metadata atomically, adding the seqdl version, kind and config."""
    header = {"seqdl.version": __version__, "seqdl.config": _encode(config or {}), **header}
    if kind is not None:
        header["seqdl.kind"] = kind
    with atomic_path(path) as temp:
        save_file({name: _contiguous(array) for name, array in tensors.items()}, str(temp), metadata=header)
    return Path(path)


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Parse and check a safetensors header without reading tensor data.

    Raises :class:`CheckpointError` for a missing, empty, truncated or
    non-safetensors file, an absurd header size, unknown dtypes, or offsets that
    are inconsistent with the shapes or run past the end of the file.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError("is a directory, expected a .safetensors file", str(path))
    if not path.is_file():
        raise CheckpointError("no such model file", str(path))
    size = path.stat().st_size
    if size < 8:
        raise CheckpointError(f"is not a safetensors file ({size} bytes)", str(path))
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(f"is not a valid safetensors file (declared header of {header_len} bytes, "
                                  f"file has {size})", str(path))
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError("is not a safetensors file (header is not JSON)", str(path)) from None
    if not isinstance(header, dict):
        raise CheckpointError("is not a safetensors file (header is not a JSON object)", str(path))
    data_size = size - 8 - header_len
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"tensor {name!r} has a malformed header entry", str(path)) from None
        if dtype not in _DTYPE_SIZES:
            raise CheckpointError(f"tensor {name!r} has unsupported dtype {dtype}", str(path))
        if any(not isinstance(d, int) or d < 0 for d in shape) or not 0 <= start <= end <= data_size \
                or end - start != count * _DTYPE_SIZES[dtype]:
            raise CheckpointError(f"tensor {name!r} has inconsistent shape {shape} and offsets {[start, end]} "
                                  f"(truncated or corrupt file)", str(path))
        spans.append((start, end))
    spans.sort()
    if any(a_end > b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])):
        raise CheckpointError("tensors overlap in the file (corrupt)", str(path))
    return header


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def load(path: str | os.PathLike, kind: str | None = None) -> Checkpoint:
    """Read a seqdl model or checkpoint; with ``kind``, refuse a model of another kind."""
    path = Path(path)
    meta = read_header(path).get("__metadata__", {}) or {}
    file_kind = meta.get("seqdl.kind")
    if kind is not None and file_kind != kind:
        found = f"a {file_kind!r} model" if file_kind else "not a seqdl model (no seqdl.kind in its header)"
        raise CheckpointError(f"expected a {kind!r} model, this is {found}", str(path))
    try:
        with safe_open(str(path), framework="np") as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"cannot be read as safetensors: {exc}", str(path)) from None
    model_state = {k: v for k, v in tensors.items() if not k.startswith(OPTIMIZER_PREFIX)}
    if "seqdl.quantization" in meta:
        from .quantize import dequantize_state

        model_state = dequantize_state(model_state, json.loads(meta["seqdl.quantization"]))
    optimizer_state = None
    if "seqdl.optimizer" in meta:
        saved = json.loads(meta["seqdl.optimizer"])
        per_param: dict[int, dict[str, Any]] = {}
        for name, array in tensors.items():
            if name.startswith(OPTIMIZER_PREFIX):
                index, key = name[len(OPTIMIZER_PREFIX):].split("/", 1)
                per_param.setdefault(int(index), {})[key] = array
        for index, values in saved["scalars"].items():
            per_param.setdefault(int(index), {}).update(values)
        optimizer_state = {"state": per_param, "param_groups": saved["param_groups"]}
    reserved = {"seqdl.kind", "seqdl.version", "seqdl.config", "seqdl.step", "seqdl.optimizer", "seqdl.scheduler",
                "seqdl.rng", "seqdl.quantization"}
    try:
        config = json.loads(meta.get("seqdl.config", "{}"))
    except json.JSONDecodeError:
        raise CheckpointError("has an unreadable seqdl.config (not JSON)", str(path)) from None
    return Checkpoint(
        path=path,
        kind=file_kind,
        version=meta.get("seqdl.version"),
        config=config,
        state_dict=model_state,
        metadata={k: _decode(v) for k, v in meta.items() if k not in reserved},
        step=int(meta["seqdl.step"]) if "seqdl.step" in meta else None,
        optimizer_state=optimizer_state,
        scheduler_state=json.loads(meta["seqdl.scheduler"]) if "seqdl.scheduler" in meta else None,
        rng_state=json.loads(meta["seqdl.rng"]) if "seqdl.rng" in meta else None,
    )


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """A summary of a model file for ``seqdl info``."""
    header = read_header(path)
    meta = header.get("__metadata__", {}) or {}
    model_tensors = {k: v for k, v in header.items() if k != "__metadata__" and not k.startswith(OPTIMIZER_PREFIX)}
    return {
        "file": str(path),
        "kind": meta.get("seqdl.kind"),
        "seqdl_version": meta.get("seqdl.version"),
        "config": _decode(meta.get("seqdl.config", "{}")),
        "n_tensors": len(model_tensors),
        "n_parameters": int(sum(np.prod(v["shape"], dtype=np.int64) for v in model_tensors.values())),
        "has_optimizer_state": "seqdl.optimizer" in meta,
        "step": int(meta["seqdl.step"]) if "seqdl.step" in meta else None,
        "file_bytes": Path(path).stat().st_size,
        "sha256": sha256_file(path),
        "metadata": {k: _decode(v) for k, v in meta.items()
                     if k not in {"seqdl.kind", "seqdl.version", "seqdl.config", "seqdl.optimizer", "seqdl.rng"}},
    }
