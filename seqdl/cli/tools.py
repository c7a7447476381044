"""Commands on any model or metrics file: ``seqdl info``, ``seqdl plot``, ``seqdl quantize``."""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Callable, Literal, Optional

import typer

from .. import __version__
from ..errors import SeqdlError
from .common import app, emit_json, json_option, quiet_option

# ``seqdl.table`` metadata value -> function(parquet, png) drawing that kind of table; front ends register theirs
# (seqdl/cli/dna.py: scans). A Parquet file without the key is a training metrics file.
FIGURES: dict[str, Callable[[Path, Path], Path]] = {}


@app.command()
def info(
    model: Optional[Path] = typer.Argument(None, metavar="MODEL", help="A seqdl model or checkpoint to describe "
                                           "(none: describe the environment)."),
    as_json: bool = json_option("Print JSON instead of text."),
) -> None:
    """Show the seqdl version and environment, or describe a model file."""
    if model is not None:
        from ..checkpoint import describe

        record = describe(model)
    else:
        from importlib.metadata import version

        import numpy as np

        from ..threads import ThreadPlan

        # what the machine offers (cores, quota, other processes' load now) and the threads seqdl would use;
        # numba's version from its metadata (importing it costs half a second)
        record = {"seqdl_version": __version__, "python": platform.python_version(), "numpy": np.__version__,
                  "numba": version("numba"), **ThreadPlan().measure().report()}
    if as_json:
        emit_json(record)
    else:
        for key, value in record.items():
            typer.echo(f"{key}: {value}")


@app.command()
def plot(
    parquet: Path = typer.Argument(..., metavar="PARQUET", help="A seqdl Parquet file: training metrics or a scan."),
    out: Path = typer.Option(..., "-o", "--out", metavar="PNG", help="PNG file to write."),
    columns: Optional[list[str]] = typer.Option(None, "--column", "-c", metavar="NAME", show_default="all",
                                                help="Metrics file: metric to draw (repeatable)."),
    x: Literal["step", "seconds"] = typer.Option("step", "--x", metavar="step|seconds", help="Metrics file: column "
                                                 "for the x axis."),
    quiet: bool = quiet_option("Print nothing on success."),
    as_json: bool = json_option("Print the file written as JSON."),
) -> None:
    """Draw a Parquet file, as its own metadata says: training curves (train and validation loss in one panel) for
    a metrics file, genome tracks record by record for a scan."""
    from ..metrics import plot_metrics

    if not parquet.is_file():
        raise SeqdlError("no such file", str(parquet))
    table = _table_kind(parquet)
    if table in FIGURES:
        if columns:
            raise SeqdlError(f"--column is for metrics files; this is a {table} file", str(parquet))
        written = FIGURES[table](parquet, out)
    else:
        written = plot_metrics(parquet, out, columns or None, x)
    if as_json:
        emit_json({table or "metrics": str(parquet), "out": str(written)})
    elif not quiet:
        typer.echo(str(written))


def _table_kind(path: Path) -> str | None:
    """The kind of table a Parquet file's metadata names: its ``seqdl.table``, or for files written before that key
    the verb of its ``seqdl.command`` where a figure is registered for it; None (a metrics file) otherwise."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..io import parquet_metadata

    try:
        metadata = parquet_metadata(pq.read_schema(path).metadata)
    except (OSError, pa.ArrowException) as exc:
        raise SeqdlError(f"not a readable Parquet file ({exc})", str(path)) from None
    if "seqdl.table" in metadata:
        return metadata["seqdl.table"]
    words = metadata.get("seqdl.command", "").removeprefix("seqdl ").split()
    return words[0] if words and words[0] in FIGURES else None


@app.command()
def quantize(
    model: Path = typer.Argument(..., metavar="MODEL", help="A seqdl model or training checkpoint."),
    out: Path = typer.Option(..., "--out", metavar="PATH", help="The quantised model file to write."),
    bits: Literal[8, 4] = typer.Option(8, "--bits", metavar="8|4", help="8: int8 per output channel; 4: 4-bit "
                                       "groups."),
    group_size: int = typer.Option(64, "--group-size", min=2, metavar="N", help="Inputs per scale for 4 bits (even)."),
    quiet: bool = quiet_option("Print nothing on success."),
    as_json: bool = json_option("Print the sizes as JSON."),
) -> None:
    """Write a smaller copy of a model with int8 or 4-bit weights (loads wherever the float model does)."""
    from ..io import check_output_path
    from ..quantize import quantize_file

    if not model.is_file():
        raise SeqdlError("no such model file", str(model))
    if group_size % 2:
        raise SeqdlError(f"--group-size must be even, not {group_size}")
    check_output_path(out)
    written = quantize_file(model, out, bits, group_size)
    record = {"model": str(model), "out": str(written), "bits": bits, "bytes_before": model.stat().st_size,
              "bytes_after": written.stat().st_size}
    if as_json:
        emit_json(record)
    elif not quiet:
        typer.echo(f"{written}: {record['bytes_after']:,} bytes (from {record['bytes_before']:,}, {bits}-bit weights)")
