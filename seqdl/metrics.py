"""Training metrics as a Parquet file beside the model, and plots of them.

A Parquet file is only readable once its footer is written, so the logger keeps
the (small) table in memory and, at every flush, rewrites the whole file
atomically with one row group per flush: readers (``seqdl plot``, pandas) always
see a complete file, and a crash leaves the last flushed version.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import SeqdlError
from .io import atomic_path, check_output_path
from .nn.module import Module


class MetricLogger:
    """Append ``step``, ``seconds`` and named scalars; columns may first appear at any step.

    ``resume=True`` keeps the rows already in ``path`` (those up to ``resume_step``),
    so a resumed run continues one file. Use as a context manager, or call ``close()``.
    """

    def __init__(self, path: str | os.PathLike, flush_every: int = 50, flush_seconds: float = 30.0,
                 resume: bool = False, resume_step: int | None = None, metadata: dict[str, str] | None = None) -> None:
        self.path = check_output_path(path)
        self.flush_every, self.flush_seconds = flush_every, flush_seconds
        self.metadata = metadata or {}
        self._batches: list[list[dict[str, float]]] = []
        self._pending: list[dict[str, float]] = []
        self._seconds_offset = 0.0
        if resume and self.path.exists():
            rows = pq.read_table(self.path).to_pylist()
            if resume_step is not None:
                rows = [r for r in rows if r["step"] <= resume_step]
            if rows:
                self._batches.append(rows)
                self._seconds_offset = float(rows[-1]["seconds"])
        self._start = time.monotonic()
        self._last_flush = self._start

    def log(self, step: int, **scalars: float) -> None:
        row = {"step": int(step), "seconds": self._seconds_offset + time.monotonic() - self._start}
        row.update({name: float(value) for name, value in scalars.items()})
        self._pending.append(row)
        if len(self._pending) >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        self._batches.append(self._pending)
        self._pending = []
        columns = ["step", "seconds"] + sorted({k for batch in self._batches for row in batch for k in row} - {"step", "seconds"})
        schema = pa.schema([("step", pa.int64())] + [(c, pa.float64()) for c in columns[1:]],
                           metadata={k.encode(): v.encode() for k, v in self.metadata.items()})
        with atomic_path(self.path) as temp:
            with pq.ParquetWriter(temp, schema) as writer:
                for batch in self._batches:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> "MetricLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parameter_norms(model: Module) -> dict[str, float]:
    """L2 norm of every parameter, keyed ``norm/<name>``."""
    return {f"norm/{name}": float(np.linalg.norm(p.data)) for name, p in model.named_parameters()}


def gradient_norm(parameters: Iterable[Any]) -> float:
    """Joint L2 norm of all gradients (0 where none)."""
    return math.sqrt(sum(float(np.sum(np.square(p.grad, dtype=np.float64))) for p in parameters if p.grad is not None))


def plot_metrics(path: str | os.PathLike, out: str | os.PathLike, columns: Sequence[str] | None = None,
                 x: str = "step") -> Path:
    """Draw one panel per metric against ``x`` and write a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SeqdlError(f"not a readable metrics Parquet file ({exc})", str(path)) from None
    names = [c for c in table.column_names if c not in {"step", "seconds"}] if columns is None else list(columns)
    missing = [c for c in names + [x] if c not in table.column_names]
    if missing:
        raise SeqdlError(f"no column {', '.join(missing)} (columns: {', '.join(table.column_names)})", str(path))
    if not names:
        raise SeqdlError("has no metric columns to plot", str(path))
    xs = np.asarray(table.column(x).to_numpy(zero_copy_only=False), dtype=float)
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    figure, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        ys = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)
        keep = ~np.isnan(ys)
        ax.plot(xs[keep], ys[keep], marker="." if keep.sum() < 50 else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    figure.suptitle(path.name)
    figure.tight_layout()
    with atomic_path(out) as temp:
        figure.savefig(temp, format="png", dpi=100)
    plt.close(figure)
    return Path(out)
