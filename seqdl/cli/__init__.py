"""The ``seqdl`` command line: thin wrappers that parse options and call the libraries.

A module per front end registers its commands: :mod:`.tools` (info, plot, quantize),
:mod:`.text` (textgen, eval text), :mod:`.dna` (scan, train dna, eval dna) and
:mod:`.vision` (segment). :func:`main` runs one command the way docs/conventions.md
describes: results on stdout, diagnostics on stderr; bad input or usage
(:class:`SeqdlError`, an option Typer refuses) is one line ``seqdl: error: ...`` and
exit code 2; anything else is exit code 1, with the traceback only under ``--debug``.
"""
from __future__ import annotations

import os
import sys
import traceback
import warnings
from typing import Any, NoReturn, Optional, Sequence

import typer

from ..errors import SeqdlError
from . import dna, ocr, text, tools, vision  # noqa: F401  (each registers its commands on the apps)
from .common import DEBUG_KEY, app, emit_json

__all__ = ["app", "emit_json", "main"]


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Run ``seqdl ARGV`` (default: this process's arguments) and exit with its code.

    0 success, 1 internal error, 2 bad input or usage, 3 a batch with failed inputs, 130 interrupted.
    """
    from ..runtime import keep_freed_memory

    keep_freed_memory()
    warnings.showwarning = _show_warning
    sys.exit(_run(list(sys.argv[1:] if argv is None else argv)))


def _run(args: list[str]) -> int:
    command = _with_debug_everywhere(typer.main.get_command(app))
    meta: dict[str, Any] = {}
    try:
        with command.make_context("seqdl", args) as ctx:
            meta = ctx.meta
            command.invoke(ctx)
        return 0
    except typer.Exit as exc:
        return exc.exit_code
    except BrokenPipeError:  # ``seqdl ... | head`` stopped reading: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
        return 141
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("seqdl: interrupted\n")
        return 130
    except SeqdlError as exc:
        sys.stderr.write(f"seqdl: error: {exc}\n")
        return 2
    except Exception as exc:
        if hasattr(exc, "format_message"):  # a usage error from Typer's (vendored) click
            return _usage_error(exc, args)
        if meta.get(DEBUG_KEY):
            traceback.print_exc()
        sys.stderr.write(f"seqdl: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)\n")
        return 1


def _with_debug_everywhere(root: Any) -> Any:
    """Give every command the root's ``--debug`` option, so that it may also follow the command's name."""
    debug = next(param for param in root.params if param.name == "debug")

    def give(group: Any) -> None:
        for command in group.commands.values():
            if debug not in command.params:
                command.params.append(debug)
            if hasattr(command, "commands"):
                give(command)

    give(root)
    return root


def _usage_error(exc: Any, args: list[str]) -> int:
    """A usage error as one line naming the option and the value given: ``seqdl: error: --workers 0: input should
    be greater than or equal to 1``."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # a bare ``seqdl`` or ``seqdl train``: Typer printed the help
        return 2
    param, message = getattr(exc, "param", None), str(getattr(exc, "message", ""))
    if param is not None and message and param.opts:  # a value Typer refused (type, range, choice)
        message = message.removeprefix("Value error, ").rstrip(".")
        given = _given_value(args, param.opts)
        name = param.opts[0] if given is None else f"{param.opts[0]} {given}"
        line = f"{name}: {message[:1].lower()}{message[1:]}"
    else:
        line = exc.format_message()
    sys.stderr.write(f"seqdl: error: {' '.join(line.split())}\n")
    return int(getattr(exc, "exit_code", 2))


def _given_value(args: list[str], opts: Sequence[str]) -> Optional[str]:
    """The value the user gave an option (``--opt V`` or ``--opt=V``; the last one wins), if any."""
    given = None
    for index, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if name in opts:
            given = value if equals else (args[index + 1] if index + 1 < len(args) else None)
    return given


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """A library's warning as one stderr line like seqdl's own (Python's format spans lines and names a source)."""
    sys.stderr.write(f"seqdl: warning: {' '.join(str(message).split())} ({category.__name__})\n")
