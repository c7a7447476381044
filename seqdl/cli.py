"""The ``seqdl`` command line: thin wrappers that parse options and call the libraries.

Every command follows CONVENTIONS.md: results on stdout, diagnostics on stderr;
expected failures (:class:`SeqdlError`) become one line ``seqdl: error: ...`` and
exit code 2; anything else is exit code 1 with the traceback only under ``--debug``.
"""
from __future__ import annotations

import json
import platform
import sys
import traceback
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .errors import SeqdlError

app = typer.Typer(
    name="seqdl",
    help="A GPU-free deep-learning toolkit: DNA scanning, text generation and handwriting OCR on NumPy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


train_app = typer.Typer(help="Train a model: text, dna or letters.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate a model: text, dna or letters.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")


@app.callback()
def _root() -> None:
    """A GPU-free deep-learning toolkit: DNA scanning, text generation and handwriting OCR on NumPy."""


def emit_json(obj: dict) -> None:
    """One JSON Lines record on stdout."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")


@app.command()
def info(
    model: Optional[Path] = typer.Argument(None, help="A seqdl model or checkpoint to describe."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Show the seqdl version and environment, or describe a model file."""
    from threadpoolctl import threadpool_info

    import numpy as np

    if model is not None:
        from .checkpoint import describe

        record = describe(model)
    else:
        blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)" for p in threadpool_info()]
        record = {
            "seqdl_version": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "blas": blas,
        }
    if as_json:
        emit_json(record)
    else:
        for key, value in record.items():
            typer.echo(f"{key}: {value}")


@app.command()
def plot(
    metrics: Path = typer.Argument(..., help="A metrics Parquet file written during training."),
    out: Path = typer.Option(..., "-o", "--out", help="PNG file to write."),
    columns: Optional[list[str]] = typer.Option(None, "--column", "-c", help="Metric to draw (repeatable; default all)."),
    x: str = typer.Option("step", help="Column for the x axis: step or seconds."),
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing on success."),
) -> None:
    """Draw training curves from a metrics Parquet file."""
    from .metrics import plot_metrics

    if not metrics.is_file():
        raise SeqdlError("no such metrics file", str(metrics))
    written = plot_metrics(metrics, out, columns or None, x)
    if not quiet:
        typer.echo(str(written))


def _report_failure(exc: Exception, debug: bool) -> int:
    if hasattr(exc, "format_message"):  # a usage error from Typer's (vendored) click
        sys.stderr.write(f"seqdl: error: {exc.format_message()}\n")
        return int(getattr(exc, "exit_code", 2))
    if debug:
        traceback.print_exc()
    sys.stderr.write(f"seqdl: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)\n")
    return 1


def main() -> None:
    from .runtime import keep_freed_memory

    keep_freed_memory()
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("seqdl: interrupted\n")
        code = 130
    except SeqdlError as exc:
        sys.stderr.write(f"seqdl: error: {exc}\n")
        code = 2
    except Exception as exc:
        code = _report_failure(exc, debug)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
