"""Training metrics as a Parquet file beside the model, and plots of them.

A Parquet file is only readable once its footer is written, and a plain
``ParquetWriter`` writes the footer at close. So :class:`MetricLogger` keeps the
(small) table in memory as Arrow row groups and, at every flush, rewrites the
whole file atomically (temp file, fsync, rename) with one row group per flush:
a reader (``seqdl plot``, pandas) always sees a complete file, and a crash
leaves the last flushed version under the final name, never a corrupt one.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import SeqdlError
from .io import atomic_path, check_output_path, parquet_metadata
from .nn.module import Module
from .tensor import Tensor

__all__ = ["MetricLogger", "parameter_norms", "gradient_norm", "plot_metrics", "read_metrics"]

KEY_COLUMNS = ("step", "seconds")


class MetricLogger:
    """Append rows of ``step``, ``seconds`` (wall time since the run started) and named float scalars.

    A column may first appear at any step (a validation loss every N steps):
    rows without it hold null. Rows are flushed to ``path`` every
    ``flush_every`` rows or ``flush_seconds`` seconds, and on :meth:`close` or
    context exit (also when training raised).

    ``resume=True`` keeps the rows already in ``path`` (only those with
    ``step <= resume_step`` when it is given) and continues the clock from the
    last kept row, so a resumed run continues one file. ``metadata`` (string
    key-value pairs, e.g. :func:`seqdl.io.provenance`) goes into the file's
    schema metadata.
    """

    def __init__(self, path: str | os.PathLike, flush_every: int = 50, flush_seconds: float = 30.0,
                 resume: bool = False, resume_step: int | None = None,
                 metadata: dict[str, str] | None = None) -> None:
        self.path = check_output_path(path)
        self.flush_every, self.flush_seconds = flush_every, flush_seconds
        self.metadata = dict(metadata or {})
        self._groups: list[pa.Table] = []  # flushed row groups, each with the columns known when it was flushed
        self._pending: list[dict[str, float]] = []
        self._columns: list[str] = []  # metric columns in order of first appearance
        self._seconds_offset = 0.0
        self._closed = False
        if resume and self.path.exists():
            self._resume(resume_step)
        self._start = self._last_flush = time.monotonic()

    def _resume(self, resume_step: int | None) -> None:
        table = read_metrics(self.path)
        self.metadata = {**parquet_metadata(table.schema.metadata), **self.metadata}
        if resume_step is not None:
            table = table.filter(pc.less_equal(table["step"], resume_step))
        self._columns = [c for c in table.column_names if c not in KEY_COLUMNS]
        if table.num_rows:
            self._groups.append(table.cast(self._schema()))
            self._seconds_offset = float(pc.max(table["seconds"]).as_py())
        self._write()  # rows after the resume step disappear from the file now, not at the first flush

    def log(self, step: int, **scalars: float | Tensor | np.ndarray) -> None:
        """Record one row; flush when ``flush_every`` rows or ``flush_seconds`` have accumulated."""
        if self._closed:
            raise RuntimeError(f"{self.path}: metric logger is closed")
        clash = [name for name in scalars if name in KEY_COLUMNS]
        if clash:
            raise ValueError(f"metric name {clash[0]!r} is reserved")
        now = time.monotonic()
        row = {"step": int(step), "seconds": self._seconds_offset + now - self._start}
        row.update({name: _to_float(value) for name, value in scalars.items()})
        self._columns += [name for name in scalars if name not in self._columns]
        self._pending.append(row)
        if len(self._pending) >= self.flush_every or now - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Turn pending rows into a row group and rewrite the file atomically."""
        if not self._pending:
            return
        self._groups.append(pa.Table.from_pylist(self._pending, schema=self._schema()))
        self._pending = []
        self._write()
        self._last_flush = time.monotonic()

    def _schema(self) -> pa.Schema:
        fields = [("step", pa.int64()), ("seconds", pa.float64())] + [(c, pa.float64()) for c in self._columns]
        return pa.schema(fields, metadata=self.metadata or None)

    def _write(self) -> None:
        schema = self._schema()
        with atomic_path(self.path) as temp:
            with pq.ParquetWriter(temp, schema) as writer:
                for group in self._groups:
                    writer.write_table(_with_columns(group, schema))

    def close(self) -> None:
        self.flush()
        self._closed = True

    def __enter__(self) -> "MetricLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_float(value: Any) -> float:
    return value.item() if isinstance(value, Tensor) else float(value)


def _with_columns(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with null columns for metrics that first appeared after it was flushed."""
    columns = [table[f.name] if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def read_metrics(path: str | os.PathLike) -> pa.Table:
    """A metrics Parquet file as an Arrow table; a :class:`SeqdlError` naming the file if it is not one."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise SeqdlError(f"not a readable metrics Parquet file ({exc})", str(path)) from None
    missing = [c for c in KEY_COLUMNS if c not in table.column_names]
    if missing:
        raise SeqdlError(f"not a metrics file (no {' or '.join(missing)} column)", str(path))
    return table


def parameter_norms(model: Module, prefix: str = "norm/") -> dict[str, float]:
    """L2 norm of every parameter, keyed ``<prefix><parameter name>`` (ready for ``logger.log(**norms)``)."""
    return {f"{prefix}{name}": float(np.linalg.norm(p.data)) for name, p in model.named_parameters()}


def gradient_norm(model: Module | Iterable[Tensor]) -> float:
    """Joint L2 norm of all gradients of a model or of some parameters (those without a gradient count 0)."""
    parameters = model.parameters() if isinstance(model, Module) else model
    grads = (p.grad.astype(np.float64, copy=False) for p in parameters if p.grad is not None)
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads))


def plot_metrics(path: str | os.PathLike, out: str | os.PathLike, columns: Sequence[str] | None = None,
                 x: str = "step") -> Path:
    """Draw one panel per metric against ``x`` (non-null points only) and write a PNG atomically; a validation
    metric shares its training metric's panel (see :func:`metric_panels`).

    Uses matplotlib's object API with the Agg canvas, so it works headless and
    leaves the caller's pyplot state and backend alone.
    """
    from matplotlib.figure import Figure

    path, out = Path(path), check_output_path(out)
    table = read_metrics(path)
    names = [c for c in table.column_names if c not in (*KEY_COLUMNS, x)] if columns is None else list(columns)
    missing = [c for c in [*names, x] if c not in table.column_names]
    if missing:
        raise SeqdlError(f"no column {', '.join(missing)} (columns: {', '.join(table.column_names)})", str(path))
    if not names:
        raise SeqdlError("has no metric columns to plot", str(path))
    xs = _as_floats(table[x])
    panels = metric_panels(names)
    n_cols = min(len(panels), 3)
    n_rows = math.ceil(len(panels) / n_cols)
    figure = Figure(figsize=(4.5 * n_cols, 3.2 * n_rows), layout="constrained")
    axes = list(figure.subplots(n_rows, n_cols, squeeze=False).flat)
    for ax, panel in zip(axes, panels):
        for name in panel:
            ys = _as_floats(table[name])
            keep = ~np.isnan(ys)
            label = ("validation" if name.startswith("val_") else "training") if len(panel) > 1 else None
            ax.plot(xs[keep], ys[keep], marker="." if keep.sum() < 50 else None, label=label)
        if len(panel) > 1:
            ax.legend(fontsize=8)
        ax.set_title(" and ".join(panel), fontsize=9)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    figure.suptitle(path.name)
    with atomic_path(out) as temp:
        figure.savefig(temp, format="png", dpi=100)
    return out


def metric_panels(names: Sequence[str]) -> list[list[str]]:
    """Metrics grouped into panels: each ``val_X`` joins the one training metric named ``train_X``, ``X`` or
    ``..._X`` (``val_loss`` with ``train_loss``, ``val_bits_per_base`` with ``lm_bits_per_base``); others stand alone."""
    panels = {name: [name] for name in names if not name.startswith("val_")}
    for name in names:
        if name.startswith("val_"):
            base = name[len("val_"):]
            matches = [train for train in panels if train == base or train.endswith(f"_{base}")]
            panels.setdefault(matches[0] if len(matches) == 1 else name, []).append(name)
    return list(panels.values())


def _as_floats(column: pa.ChunkedArray) -> np.ndarray:
    """A column as float64 with NaN for null."""
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
