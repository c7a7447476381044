"""File handling every command shares: atomic outputs, opening inputs, checksums, provenance, progress.

Inputs are opened by content, not by name: a gzip file is decompressed whatever
it is called (:func:`open_input`), and a damaged gzip stream, which can fail at
any read, is one error naming the file (:func:`gzip_errors`). Outputs are written
to a temp file in the target directory, fsynced and renamed, so a crash, Ctrl-C
or full disk leaves the previous file or nothing, never a truncated file under
the final name.
"""
from __future__ import annotations

import errno
import glob
import gzip
import hashlib
import json
import os
import sys
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping, Sequence

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, ProgressColumn, Task,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)
from rich.text import Text

from .errors import SeqdlError

TEMP_SUFFIX = ".seqdl-tmp"
GZIP_MAGIC = b"\x1f\x8b"
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)  # what a truncated or corrupt gzip stream raises on a read


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
    remove_stale_temps(final.parent, final.name)  # what a killed writer of this file left behind
    temp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    try:
        yield temp
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(temp, _new_file_mode())  # some writers (safetensors) create their files owner-only
        os.replace(temp, final)
        _fsync_directory(final.parent)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        reason = _write_failure(exc)
        if reason:
            raise WriteError(f"cannot write: {reason}; nothing was written", str(final)) from exc
        raise


class WriteError(SeqdlError, OSError):
    """An output the disk would not take (full, quota, read-only): one line for the CLI, an OSError for callers."""

    def __new__(cls, message: str, path: str | None = None) -> "WriteError":
        return OSError.__new__(cls, message)  # one argument: given two, OSError reads them as (errno, strerror)


# Write failures that are the disk's, not the program's. Rust and C++ writers (safetensors, Arrow) raise their own
# exception types with the OS message inside, so the message is matched as well as the errno.
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
_DISK_MESSAGES = tuple(os.strerror(number) for number in _DISK_ERRNOS)


def _write_failure(exc: BaseException) -> str | None:
    """The OS reason if ``exc`` is a full disk, exceeded quota, too-large file or read-only file system."""
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return os.strerror(exc.errno)
    if isinstance(exc, Exception) and not isinstance(exc, SeqdlError):
        text = str(exc)
        return next((message for message in _DISK_MESSAGES if message in text), None)
    return None


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """``open()`` for writing, atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as temp:
        with open(temp, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle


def remove_stale_temps(directory: str | os.PathLike, name: str | None = None) -> int:
    """Delete temp files that killed runs left in ``directory`` (their writer process is gone); returns how many.

    With ``name``, only the temp files of that output file.
    """
    removed = 0
    pattern = f".{glob.escape(name)}.*{TEMP_SUFFIX}" if name else f".*{TEMP_SUFFIX}"
    for temp in Path(directory).glob(pattern):
        try:
            pid = int(temp.name.split(".")[-3])
        except (IndexError, ValueError):
            continue
        if not _process_alive(pid):
            temp.unlink(missing_ok=True)
            removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    try:  # a killed process whose parent died too may linger as a zombie until init reaps it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


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


def is_gzip(path: str | os.PathLike) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_input(path: str | os.PathLike, expected: str = "a file") -> BinaryIO:
    """A binary handle on ``path``, decompressed if it is gzip or bgzip (judged by content, not by name).

    A missing, unreadable or directory path is a :class:`SeqdlError` naming it (``expected`` says what a
    directory is not, e.g. ``"a FASTA file"``). Read inside :func:`gzip_errors`; :func:`stored_file` is
    the file as stored under the gzip layer, whose ``tell()`` measures progress against the size on disk.
    """
    path = Path(path)
    try:
        with open(path, "rb") as probe:
            magic = probe.read(2)
    except IsADirectoryError:
        raise SeqdlError(f"is a directory, expected {expected}", str(path)) from None
    except FileNotFoundError:
        raise SeqdlError("no such file", str(path)) from None
    except OSError as exc:
        raise SeqdlError(f"cannot be read: {exc.strerror}", str(path)) from None
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


def stored_file(handle: BinaryIO) -> BinaryIO:
    """The file under a handle from :func:`open_input` (a gzip handle reads it through ``fileobj``)."""
    return getattr(handle, "fileobj", None) or handle


@contextmanager
def gzip_errors(path: str | os.PathLike) -> Iterator[None]:
    """A truncated or corrupt gzip stream, whichever read it fails at, as one error naming the file."""
    try:
        yield
    except GZIP_ERRORS as exc:
        raise SeqdlError(f"truncated or corrupt gzip data ({exc})", str(path)) from None


def parquet_metadata(metadata: Mapping[bytes, bytes] | None) -> dict[str, str]:
    """A Parquet schema's key-value metadata (``pq.read_schema(path).metadata``) as text; pyarrow's own
    ``pandas`` entry left out. The keys seqdl writes are in docs/conventions.md."""
    return {key.decode(): value.decode() for key, value in (metadata or {}).items() if key != b"pandas"}


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
    """Key-value metadata every Parquet output carries (docs/conventions.md, "Parquet outputs")."""
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
    """A rich progress bar on stderr (so stdout stays clean for results); ``quiet`` hides it.

    Each task counts in ``unit``, or in its own ``unit`` field (``add_task(..., unit="bytes")``); ``"bytes"``
    shows done/total in kB/MB/GB and the rate, for work measured by the bytes of its input files.
    """
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), _AmountColumn(unit),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}")]
    return Progress(*columns, console=stderr_console, disable=hide_progress(quiet), transient=False)


class _AmountColumn(ProgressColumn):
    """``12/40 steps``, or ``1.2/4.6 MB 350.2 kB/s`` for a task counted in bytes."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit
        self.count, self.size, self.speed = MofNCompleteColumn(), DownloadColumn(), TransferSpeedColumn()

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", self.unit)
        if unit == "bytes":
            return Text.assemble(self.size.render(task), " ", self.speed.render(task))
        count = self.count.render(task)
        return Text.assemble(count, f" {unit}") if unit else count


def hide_progress(quiet: bool) -> bool:
    """Bars are for people: hidden with ``--quiet`` and when stderr is a log file or pipe, not a terminal."""
    return quiet or not stderr_console.is_terminal


def warn(message: str) -> None:
    """A warning on stderr, one line."""
    sys.stderr.write(f"seqdl: warning: {message}\n")
