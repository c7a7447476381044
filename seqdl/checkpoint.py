"""Models and training checkpoints as safetensors files, never pickle.

Layout of a file:

- model tensors under exactly their PyTorch names (``model.state_dict()``), so a
  file saved without an optimizer loads into the equivalent PyTorch module::

      from safetensors.torch import load_file
      torch_model.load_state_dict(load_file("model.safetensors"))

- a training checkpoint also holds optimizer state tensors under
  ``optimizer/<parameter index>/<name>`` (``exp_avg``, ``momentum_buffer``...).
  A PyTorch user drops them with::

      weights = {k: v for k, v in load_file(path).items() if not k.startswith("optimizer/")}

- the header's ``__metadata__`` (string values only): ``seqdl.kind``,
  ``seqdl.version``, ``seqdl.config`` (JSON), and for training checkpoints
  ``seqdl.step``, ``seqdl.optimizer`` (JSON: hyper-parameters and scalar state
  such as Adam's step count), ``seqdl.scheduler`` (JSON) and ``seqdl.rng`` (the
  global generator's state, JSON); then the caller's metadata (``seqdl.vocab``,
  ``seqdl.classes``, model card keys). Caller values that are not strings are
  stored as JSON and their keys listed in ``seqdl.json_keys``, so :func:`load`
  gives back exactly the values that were saved.

Every header is parsed and checked (size, dtypes, offsets, layout) before any
tensor is read, so a truncated, corrupt or hostile file is refused with one
line naming the file, before any large allocation. Writes are atomic: a temp
file in the target directory, fsynced, then renamed over the final name.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as serialize

from . import __version__
from . import random as _random
from .errors import CheckpointError
from .io import atomic_path, sha256_file
from .nn.module import Module

__all__ = ["Checkpoint", "save", "load", "restore", "describe", "read_header", "write_safetensors", "sha256_file",
           "OPTIMIZER_PREFIX"]

OPTIMIZER_PREFIX = "optimizer/"
MAX_HEADER_BYTES = 100 * 1024 * 1024
# safetensors dtypes that NumPy can hold, with their sizes in bytes.
_DTYPE_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "I32": 4, "U32": 4, "F32": 4,
                "I64": 8, "U64": 8, "F64": 8}
KIND, VERSION, CONFIG, STEP = "seqdl.kind", "seqdl.version", "seqdl.config", "seqdl.step"
OPTIMIZER, SCHEDULER, RNG, JSON_KEYS = "seqdl.optimizer", "seqdl.scheduler", "seqdl.rng", "seqdl.json_keys"
QUANTIZATION = "seqdl.quantization"
RESERVED = frozenset({KIND, VERSION, CONFIG, STEP, OPTIMIZER, SCHEDULER, RNG, JSON_KEYS, QUANTIZATION})


@dataclass
class Checkpoint:
    """What :func:`load` read from a file; :meth:`restore` puts it into a model (and optimizer)."""

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

    def require_shapes(self, expected: Mapping[str, tuple[int, ...]]) -> None:
        """Refuse a config that does not match the stored weights *before* a model is built from it (an edited
        header could otherwise ask for gigabytes). ``expected``: the tensors whose shapes pin every size."""
        for name, shape in expected.items():
            found = tuple(self.state_dict[name].shape) if name in self.state_dict else None
            if found != tuple(shape):
                raise CheckpointError(f"config does not match the weights (edited or corrupt?): {name} is "
                                      f"{found or 'missing'}, the config says {tuple(shape)}", str(self.path))

    def restore(self, model: Module, optimizer: Any = None, scheduler: Any = None) -> "Checkpoint":
        """Load the weights (strict names and shapes) and, if given, optimizer and scheduler state.

        Restoring an optimizer means resuming training, so the global random
        generator is also set back to its saved state (same shuffles, same
        dropout masks as an uninterrupted run).
        """
        try:
            model.load_state_dict(self.state_dict)
        except ValueError as exc:
            raise CheckpointError(f"does not fit this model: {exc}", str(self.path)) from None
        if optimizer is not None:
            self._restore_optimizer(optimizer)
            if self.rng_state is not None:
                _random.set_rng_state(self.rng_state)
        if scheduler is not None:
            if self.scheduler_state is None:
                raise CheckpointError("holds no learning-rate schedule state", str(self.path))
            scheduler.load_state_dict(self.scheduler_state)
        return self

    def _restore_optimizer(self, optimizer: Any) -> None:
        if self.optimizer_state is None:
            raise CheckpointError("holds no optimizer state (a model file, not a training checkpoint)", str(self.path))
        try:
            optimizer.load_state_dict(self.optimizer_state)
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"optimizer state does not fit: {exc}", str(self.path)) from None


# ------------------------------------------------------------------ writing
def save(path: str | os.PathLike, model: Module, optimizer: Any = None, step: int | None = None,
         config: dict[str, Any] | None = None, metadata: Mapping[str, Any] | None = None, kind: str | None = None,
         scheduler: Any = None) -> Path:
    """Write ``model`` (and, for a training checkpoint, optimizer, schedule and RNG state) atomically.

    Without ``optimizer`` the file is a plain model that PyTorch can load; with
    it, it is a checkpoint that :meth:`Checkpoint.restore` resumes exactly.
    Returns the path written.
    """
    tensors = dict(model.state_dict())
    entries: dict[str, str] = {}
    if step is not None:
        entries[STEP] = str(int(step))
    if optimizer is not None:
        optimizer_tensors, entries[OPTIMIZER] = _split_optimizer_state(optimizer.state_dict())
        tensors.update(optimizer_tensors)
        entries[RNG] = _json(_random.get_rng_state())
    if scheduler is not None:
        entries[SCHEDULER] = _json(scheduler.state_dict())
    return write_safetensors(path, tensors, kind=kind, config=config, metadata=metadata, entries=entries)


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, np.ndarray], str]:
    """Arrays as ``optimizer/<index>/<name>`` tensors; hyper-parameters and scalars as one JSON string."""
    tensors: dict[str, np.ndarray] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, np.ndarray):
                tensors[f"{OPTIMIZER_PREFIX}{index}/{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, _json({"param_groups": state["param_groups"], "scalars": scalars})


def write_safetensors(path: str | os.PathLike, tensors: Mapping[str, np.ndarray], *, kind: str | None = None,
                      config: dict[str, Any] | None = None, metadata: Mapping[str, Any] | None = None,
                      entries: Mapping[str, str] | None = None) -> Path:
    """Write tensors with a seqdl header atomically; every seqdl model file goes through here.

    ``metadata`` is the caller's (values JSON-encoded where not strings);
    ``entries`` are seqdl's own reserved header entries (already strings).
    """
    header = {VERSION: __version__, CONFIG: _json(config or {}), **(entries or {})}
    if kind is not None:
        header[KIND] = kind
    header.update(_encode_metadata(metadata or {}))
    # Serialised in memory and written by us: safetensors' own save_file writes a ``.tmpXXXXXX`` file of its own
    # beside the target first, which a killed run would leave behind where no cleanup knows about it.
    data = serialize({name: _contiguous(array) for name, array in tensors.items()}, metadata=header)
    with atomic_path(path) as temp:
        _write_file(temp, data)
    return Path(path)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def _encode_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    reserved = sorted(RESERVED.intersection(metadata))
    if reserved:
        raise ValueError(f"metadata key(s) {', '.join(reserved)} are reserved (use the kind=/config=/step= arguments)")
    encoded = {key: value if isinstance(value, str) else _json(value) for key, value in metadata.items()}
    json_keys = sorted(key for key, value in metadata.items() if not isinstance(value, str))
    if json_keys:
        encoded[JSON_KEYS] = _json(json_keys)
    return encoded


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _contiguous(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array of the same shape (``np.ascontiguousarray`` would turn 0-d into 1-d)."""
    array = np.asarray(array)
    return array if array.flags.c_contiguous else array.copy(order="C")


# ------------------------------------------------------------------ reading
def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Parse and check a safetensors header without reading tensor data.

    Raises :class:`CheckpointError` naming the file for a missing file, a
    directory, an empty, truncated or non-safetensors file, a declared header
    larger than the file or than 100 MB, dtypes NumPy cannot hold, and offsets
    that disagree with the shapes or do not tile the data exactly.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError("is a directory, expected a .safetensors file", str(path))
    if not path.is_file():
        raise CheckpointError("no such model file", str(path))
    size = path.stat().st_size
    if size < 8:
        raise CheckpointError(f"is not a safetensors file (only {size} bytes)", str(path))
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > size - 8:  # the first 8 bytes of a FASTA or text file read as a huge length
            raise CheckpointError("is not a safetensors model (it does not start with a safetensors header)",
                                  str(path))
        if header_len > MAX_HEADER_BYTES:
            raise CheckpointError(f"is not a safetensors model it can read (declared header of {header_len} bytes, "
                                  f"limit {MAX_HEADER_BYTES})", str(path))
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError("is not a safetensors file (header is not JSON)", str(path)) from None
    if not isinstance(header, dict):
        raise CheckpointError("is not a safetensors file (header is not a JSON object)", str(path))
    _check_metadata(header.get("__metadata__", {}), path)
    _check_layout(header, size - 8 - header_len, path)
    return header


def _check_metadata(meta: Any, path: Path) -> None:
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError("has a malformed __metadata__ (must map strings to strings)", str(path))


def _check_layout(header: dict[str, Any], data_size: int, path: Path) -> None:
    """Each tensor's byte span must match its shape, and the spans must tile the data exactly."""
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end, needed = _tensor_span(name, info, path)
        if end - start != needed:
            raise CheckpointError(f"tensor {name!r}: shape {info['shape']} of {info['dtype']} needs {needed} bytes "
                                  f"but its offsets give {end - start} (corrupt file)", str(path))
        if end > data_size:
            raise CheckpointError(f"is truncated: tensor {name!r} ends at byte {end} of the data, "
                                  f"which holds {data_size}", str(path))
        spans.append((start, end))
    position = 0
    for start, end in sorted(spans):
        if start != position:
            raise CheckpointError("tensor data is not laid out contiguously (corrupt file)", str(path))
        position = end
    if position != data_size:
        raise CheckpointError(f"has {data_size - position} bytes after the last tensor (corrupt file)", str(path))


def _tensor_span(name: str, info: Any, path: Path) -> tuple[int, int, int]:
    """``(start, end, bytes the shape needs)`` of one header entry, in exact integer arithmetic."""
    try:
        dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"tensor {name!r} has a malformed header entry", str(path)) from None
    if dtype not in _DTYPE_SIZES:
        raise CheckpointError(f"tensor {name!r} has dtype {dtype}, which seqdl cannot read", str(path))
    numbers = [*shape, start, end] if isinstance(shape, list) else [None]
    if not all(type(n) is int and n >= 0 for n in numbers) or start > end:
        raise CheckpointError(f"tensor {name!r} has an invalid shape {shape} or offsets {[start, end]}", str(path))
    return start, end, math.prod(shape) * _DTYPE_SIZES[dtype]


def _metadata(header: dict[str, Any]) -> dict[str, str]:
    return header.get("__metadata__") or {}


def _json_entry(meta: dict[str, str], key: str, path: Path, default: Any = None) -> Any:
    if key not in meta:
        return default
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError:
        raise CheckpointError(f"has an unreadable {key} header entry (not JSON)", str(path)) from None


def _caller_metadata(meta: dict[str, str], path: Path) -> dict[str, Any]:
    """The caller's entries, JSON-decoded where :func:`save` encoded them."""
    json_keys = set(_json_entry(meta, JSON_KEYS, path, []))
    return {key: _json_entry(meta, key, path) if key in json_keys else value
            for key, value in meta.items() if key not in RESERVED}


def load(path: str | os.PathLike, model: Module | None = None, *, kind: str | None = None) -> Checkpoint:
    """Read a seqdl model or checkpoint, the counterpart of :func:`save`.

    With ``model``, its weights are loaded into it (names and shapes must match, as
    :meth:`Checkpoint.restore` checks); with ``kind``, a file of another kind is refused.
    Returns the checkpoint either way: config, metadata, step, optimizer state. Quantised
    files (see :mod:`seqdl.quantize`) come back with float32 weights.
    """
    if model is not None and not isinstance(model, Module):
        raise TypeError(f"load(path, model): model must be a seqdl Module, not {type(model).__name__} "
                        f"(the kind is a keyword: load(path, kind=...))")
    path = Path(path)
    meta = _metadata(read_header(path))
    file_kind = meta.get(KIND)
    if kind is not None and file_kind != kind:
        found = f"a {file_kind!r} model" if file_kind else "not a seqdl model (no seqdl.kind in its header)"
        raise CheckpointError(f"expected a {kind!r} model, this is {found}", str(path))
    tensors = _read_tensors(path)
    model_state = {k: v for k, v in tensors.items() if not k.startswith(OPTIMIZER_PREFIX)}
    if QUANTIZATION in meta:
        model_state = _dequantized(model_state, _json_entry(meta, QUANTIZATION, path), path)
    checkpoint = Checkpoint(
        path=path,
        kind=file_kind,
        version=meta.get(VERSION),
        config=_json_entry(meta, CONFIG, path, {}),
        state_dict=model_state,
        metadata=_caller_metadata(meta, path),
        step=_step(meta, path),
        optimizer_state=_optimizer_state(tensors, _json_entry(meta, OPTIMIZER, path), path),
        scheduler_state=_json_entry(meta, SCHEDULER, path),
        rng_state=_json_entry(meta, RNG, path),
    )
    return checkpoint if model is None else checkpoint.restore(model)


def _step(meta: dict[str, str], path: Path) -> int | None:
    if STEP not in meta:
        return None
    if not meta[STEP].isdigit():
        raise CheckpointError(f"has an invalid {STEP} header entry {meta[STEP]!r}", str(path))
    return int(meta[STEP])


def _dequantized(state: dict[str, np.ndarray], info: Any, path: Path) -> dict[str, np.ndarray]:
    from .quantize import dequantize_state

    try:
        return dequantize_state(state, info)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"has an inconsistent {QUANTIZATION} header entry ({exc!r})", str(path)) from None


def _read_tensors(path: Path) -> dict[str, np.ndarray]:
    try:
        with safe_open(str(path), framework="np") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for files it cannot read
        raise CheckpointError(f"cannot be read as safetensors: {exc}", str(path)) from None


def _optimizer_state(tensors: dict[str, np.ndarray], saved: dict[str, Any] | None, path: Path
                     ) -> dict[str, Any] | None:
    """Reassemble ``Optimizer.state_dict()`` from its tensors and its JSON header entry."""
    if saved is None:
        return None
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list):
        raise CheckpointError(f"has a malformed {OPTIMIZER} header entry (no param_groups)", str(path))
    per_param: dict[int, dict[str, Any]] = {}
    for name, array in tensors.items():
        if name.startswith(OPTIMIZER_PREFIX):
            index, _, key = name[len(OPTIMIZER_PREFIX):].partition("/")
            if not index.isdigit() or not key:
                raise CheckpointError(f"has a malformed optimizer tensor name {name!r}", str(path))
            per_param.setdefault(int(index), {})[key] = array
    for index, values in saved.get("scalars", {}).items():
        per_param.setdefault(int(index), {}).update(values)
    return {"state": per_param, "param_groups": saved["param_groups"]}


def restore(path: str | os.PathLike, model: Module, optimizer: Any = None, scheduler: Any = None,
            kind: str | None = None) -> Checkpoint:
    """``load(path, kind=kind).restore(model, optimizer, scheduler)``: one call to resume training."""
    return load(path, kind=kind).restore(model, optimizer, scheduler)


# ----------------------------------------------------------------- describe
def describe(path: str | os.PathLike) -> dict[str, Any]:
    """A summary of a model file for ``seqdl info``, read from the header (plus a streamed checksum).

    ``n_parameters`` counts every stored model value (BatchNorm running
    statistics included; a quantised weight counts its original elements).
    """
    path = Path(path)
    header = read_header(path)
    meta = _metadata(header)
    shapes = _model_shapes(header, _json_entry(meta, QUANTIZATION, path))
    return {
        "file": str(path),
        "kind": meta.get(KIND),
        "seqdl_version": meta.get(VERSION),
        "config": _json_entry(meta, CONFIG, path, {}),
        "n_parameters": sum(math.prod(shape) for shape in shapes.values()),
        "n_tensors": len(shapes),
        "file_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "step": _step(meta, path),
        "has_optimizer_state": OPTIMIZER in meta,
        "quantization": _json_entry(meta, QUANTIZATION, path),
        "metadata": _caller_metadata(meta, path),
    }


def _model_shapes(header: dict[str, Any], quantization: dict[str, Any] | None) -> dict[str, list[int]]:
    """Shapes of the model's tensors as the model sees them (quantised weights at their float shape)."""
    shapes = {name: info["shape"] for name, info in header.items()
              if name != "__metadata__" and not name.startswith(OPTIMIZER_PREFIX)}
    if quantization:
        for name, shape in quantization["tensors"].items():
            shapes.pop(f"{name}.q", None)
            shapes.pop(f"{name}.scale", None)
            shapes[name] = shape
    return shapes
