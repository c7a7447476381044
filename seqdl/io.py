"""File handling every command shares: atomic outputs, input globs, checksums, provenance, progress.

Outputs are written to a temp file in the target directory, fsynced and renamed,
so a crash, Ctrl-C or full disk leaves the previous file or nothing, never a
truncated file under the final name.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .errors import SeqdlError

TEMP_SUFFIX = ".seqdl-tmp"


def check_output_path(path: str | os.PathLike) -> Path:
    """Refuse an output whose directory does not exist, before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise SeqdlError("is a directory, expected a file name", str(path))
    if not path.parent.exists():
        raise SeqdlError(f"directory {path.parent} does not exist", str(path))
    return path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync it and rename it to ``path``.

    On any exception (KeyboardInterrupt included) the temp file is removed and
    whatever was at ``path`` before is untouched.
    """
    final = check_output_path(path)
    temp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    try:
        yield temp
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(temp, _new_file_mode())  # some writers (safetensors) create their files owner-only
        os.replace(temp, final)
        _fsync_directory(final.parent)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """``open()`` for writing, atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as temp:
        with open(temp, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the process umask (which can only be read by setting it)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not every platform lets a directory be opened
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def expand_inputs(patterns: Sequence[str | os.PathLike]) -> list[Path]:
    """Paths and globs, in the order given; a pattern that matches nothing is an error."""
    paths: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not matches:
            raise SeqdlError("no file matches this pattern", text)
        for match in matches:
            path = Path(match)
            if path.is_dir():
                raise SeqdlError("is a directory, expected a file", match)
            if not path.exists():
                raise SeqdlError("no such file", match)
            paths.append(path)
    return paths


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def provenance(
    command: str, params: dict[str, Any], inputs: Sequence[str | os.PathLike] = (),
    model: str | os.PathLike | None = None,
) -> dict[str, str]:
    """Key-value metadata every Parquet output carries (CONVENTIONS.md, "Files")."""
    from . import __version__

    meta = {
        "seqdl.version": __version__,
        "seqdl.command": command,
        "seqdl.params": json.dumps(params, sort_keys=True, default=str),
        "seqdl.inputs": json.dumps([{"path": str(p), "sha256": sha256_file(p)} for p in inputs]),
    }
    if model is not None:
        meta["seqdl.model"] = str(model)
        meta["seqdl.model_sha256"] = sha256_file(model)
    return meta


def command_line() -> str:
    return " ".join(["seqdl", *sys.argv[1:]])


stderr_console = Console(stderr=True)


def progress_bar(quiet: bool = False, unit: str = "") -> Progress:
    """A rich progress bar on stderr (so stdout stays clean for results); ``quiet`` hides it."""
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    columns += [TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}")]
    return Progress(*columns, console=stderr_console, disable=hide_progress(quiet), transient=False)


def hide_progress(quiet: bool) -> bool:
    """Bars are for people: hidden with ``--quiet`` and when stderr is a log file or pipe, not a terminal."""
    return quiet or not stderr_console.is_terminal


def warn(message: str) -> None:
    """A warning on stderr, one line."""
    sys.stderr.write(f"seqdl: warning: {message}\n")
