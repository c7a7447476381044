"""What every command shares: the Typer apps, the common options, JSON Lines output and batch mode.

A front end's module (``tools``, ``text``, ``dna``, ``vision``) registers its commands on
:data:`app`, :data:`train_app` or :data:`eval_app` with the usual Typer decorators; the
command and group classes here keep the help free of Python types (``<bool>``,
``<list[str]>``): every value is named by its ``metavar`` and every default is shown.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from ..errors import SeqdlError
from ..training import DEFAULT_MINUTES

if TYPE_CHECKING:
    from ..batch import BatchResult, Job
    from ..threads import ThreadPlan

DEBUG_KEY = "seqdl.debug"


def _no_type_column(command: Any) -> None:
    """Name arguments by their metavar only and drop ``<bool>`` from ``--help`` (Typer shows Python types)."""
    for param in command.params:
        if isinstance(param, TyperArgument) and param.metavar:
            param.display_type_rich = lambda ctx: None
        elif getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # a switch takes no value


class _PlainHelpOption:
    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""  # not ``--help <bool>``
        return option


class Command(_PlainHelpOption, TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _no_type_column(self)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``[OPTIONS] METRICS`` and ``[FASTA]...`` (Typer writes a required argument as ``{METRICS}``)."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or param.name.upper()
                pieces.append((name if param.required else f"[{name}]") + ("..." if param.nargs != 1 else ""))
        return pieces


class Group(_PlainHelpOption, TyperGroup):
    pass


class App(typer.Typer):
    """A Typer app whose commands use :class:`Command` (so no one has to remember ``cls=``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=Group, add_completion=False, pretty_exceptions_enable=False,
                         context_settings={"show_default": True}, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", Command)
        return super().command(*args, **kwargs)


app = App(name="seqdl", no_args_is_help=True)
train_app = App(help="Train a model.", no_args_is_help=True)
eval_app = App(help="Evaluate a model.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")


def _remember_debug(ctx: typer.Context, value: bool) -> None:
    if value:
        ctx.meta[DEBUG_KEY] = True  # click shares meta between a command's context and its parents'


# ``main`` gives every command this option, so ``seqdl --debug scan ...`` and ``seqdl scan ... --debug`` both work.
DEBUG = typer.Option(False, "--debug", callback=_remember_debug, expose_value=False, is_eager=True, metavar="",
                     help="Show the traceback of an internal error (exit code 1).")


@app.callback()
def _root(debug: bool = DEBUG) -> None:  # not exposed: the callback records it for main()
    """A GPU-free deep-learning toolkit: DNA scanning, text generation and handwriting OCR on NumPy."""


def default_is(value: object) -> str:
    """``[default: value]`` in the help of an option whose default is None (so a resume can tell it was not given)."""
    return f"\\[default: {value}]"  # escaped: Typer renders help as rich markup


def quiet_option(help: str = "No progress bar.") -> Any:
    return typer.Option(False, "--quiet", help=help, metavar="")


def json_option(help: str) -> Any:
    return typer.Option(False, "--json", help=help, metavar="")


def flag(name: str, help: str) -> Any:
    """A boolean switch, off by default."""
    return typer.Option(False, name, help=help, metavar="")




def seed_option(default: str) -> Any:
    return typer.Option(None, "--seed", metavar="N", help="Seed that makes the run repeatable. " + default_is(default))


FROM_LIST = typer.Option(None, "--from-list", metavar="FILE",
                         help="A file naming one input per line (with or instead of INPUTS). " + default_is("none"))
WORKERS = typer.Option(None, "--workers", min=1, metavar="N", help="Batch mode on a local Dask cluster of N worker "
                       "processes. " + default_is("no batch mode"))
SCHEDULER = typer.Option(None, "--scheduler", metavar="ADDRESS", help="Batch mode on an existing Dask cluster, e.g. "
                         "tcp://host:8786. " + default_is("none"))
CHECKPOINT_MINUTES = typer.Option(5.0, "--checkpoint-minutes", metavar="X", help="Minutes between "
                                  "training checkpoints (one is also written at the end and on Ctrl-C).")
THREADS = typer.Option(None, "--threads", min=1, metavar="N", help="Threads for the model's products (batch mode: "
                       "cores per worker, one task per worker). " + default_is(
                           "1 for one-row products; the free cores for large ones (batch mode: 1)"))


def thread_plan(threads: Optional[int]) -> "ThreadPlan":
    """The BLAS threads this command gives each kind of work (``--threads`` overrides; see seqdl/threads.py)."""
    from ..threads import ThreadPlan

    return ThreadPlan(override=threads).measure()


def emit_json(obj: dict) -> None:
    """One JSON Lines record on stdout; an undefined number (NaN, infinity) is null, as strict JSON needs."""
    sys.stdout.write(json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False) + "\n")


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def batch_inputs(patterns: Optional[list[str]], from_list: Optional[Path]) -> list[Path]:
    """INPUTS and the lines of ``--from-list``, globs expanded; refuses none at all."""
    from ..batch import read_list
    from ..io import expand_inputs

    patterns = list(patterns or []) + (read_list(from_list) if from_list is not None else [])
    if not patterns:
        raise SeqdlError("no inputs: give files, globs or --from-list FILE")
    return expand_inputs(patterns)


def run_batch(job: "Job", paths: list[Path], out: Optional[Path], workers: Optional[int], scheduler: Optional[str],
              quiet: bool, as_json: bool, after: Optional[Callable[["BatchResult"], dict[str, Any]]] = None) -> None:
    """Batch mode: a Parquet file per input and a manifest in ``out``; exit 3 if some inputs failed.

    ``after(result)``, if given, runs once the batch is done (failed inputs or not) and returns what it adds to the
    summary (printed ``key: value`` lines, or keys of the JSON summary).
    """
    from ..batch import check_batch_options
    from ..batch import run_batch as run
    from ..io import command_line

    out = check_batch_options(out, workers)
    result = run(job, paths, out, workers=workers, scheduler=scheduler, quiet=quiet, command=command_line())
    summary = result.summary()
    extra = after(result) if after is not None else {}
    if as_json:
        for record in result.records + [{**summary, **extra}]:
            emit_json(record)
    elif not quiet:
        typer.echo(f"{out}: {summary['done']} of {summary['inputs']} inputs done ({summary['reused']} reused), "
                   f"{summary['rows']:,} rows, {summary['units']:,} {job.unit} in {summary['seconds']:.1f} s")
        for key, value in extra.items():
            typer.echo(f"{key}: {value}")
    for record in result.failed:
        sys.stderr.write(f"seqdl: error: {record['error']}\n")
    if result.failed:
        raise typer.Exit(3)


def make_directories(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents; returns the directories created, outermost first."""
    missing = [p for p in [path, *path.parents] if not p.exists()][::-1]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SeqdlError(f"cannot create the --annotate directory: {exc.strerror}", str(path)) from None
    return missing


# The options every ``seqdl train ...`` shares (the shared loop's budget, resume and output).
MODEL_OUT = typer.Option(..., "--out", "--model", metavar="PATH", help="Model file to write (or continue with "
                         "--resume).")
MINUTES = typer.Option(None, "--minutes", metavar="X", help="Training budget in minutes. "
                       + default_is(f"{DEFAULT_MINUTES:g} unless --steps"))
STEPS = typer.Option(None, "--steps", min=1, metavar="N", help="Training budget in optimizer steps. With --resume: "
                     "N more steps after a finished run; after an interrupted one, its budget counted from its start. "
                     + default_is("none: --minutes"))
RESUME = flag("--resume", "Continue from the model's training checkpoint.")
FORCE = flag("--force", "Train a new model over an existing file.")
