"""Batch runs over many inputs on a Dask cluster: one Parquet file per input, plus a manifest.

A front end describes its per-input work as a :class:`Job`; this module runs it
for every input on the workers of a ``dask.distributed`` cluster (a local one by
default, or any scheduler by address) and writes, into one output directory:

- ``<input name>-<hash of its path>.parquet`` per input, written atomically by the
  job and carrying the usual provenance metadata (``seqdl.inputs``,
  ``seqdl.model_sha256``, ``seqdl.params``), and beside it the job's side files
  (same base name, the job's ``side_suffixes``, e.g. ``.bed`` and ``.gff3``);
- ``_manifest.parquet``: every input with its sha256, status (``done`` or
  ``failed``), the one-line error, row count, output file and side files.

A rerun reuses an output whose own metadata names the same input checksum, model
checksum and parameters, and whose side files exist; it redoes failed or missing
ones. The decision rests on the output file itself, not the manifest, so a batch
killed at any moment loses at most the inputs that were in flight. A job writes
its side files before its Parquet file, and an output about to be redone is
deleted first, so a Parquet file that is there always came with the side files
that are there.

The core knows nothing of DNA or text: the job's ``run`` function does the work.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import SeqdlError
from .io import (atomic_path, parquet_metadata, progress_bar, provenance, remove_stale_temps, sha256_file,
                 stderr_console, warn)

MANIFEST = "_manifest.parquet"
MANIFEST_SCHEMA = pa.schema([
    ("input", pa.string()), ("sha256", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ("rows", pa.int64()), ("output", pa.string()), ("reused", pa.bool_()), ("seconds", pa.float64()),
    ("units", pa.int64()), ("side_outputs", pa.list_(pa.string())),
])


@dataclass(frozen=True)
class Job:
    """One front end's work on one input, shipped to the workers (so ``run`` must be picklable).

    ``run(input, output)`` writes ``output`` atomically, with provenance metadata
    whose ``seqdl.params`` is ``json.dumps(params, sort_keys=True, default=str)``,
    and returns ``{"rows": ..., "units": ...}`` (units: bases or characters). It
    also writes ``output.with_suffix(s)`` for each of ``side_suffixes``, each
    atomically and all before ``output``.
    """

    command: str
    run: Callable[[Path, Path], dict[str, int]]
    params: dict[str, Any]
    model: Path | None = None
    unit: str = "bp"
    threads: int = 1  # cores one task may use (BLAS and the job's own threads); one task runs per worker
    side_suffixes: tuple[str, ...] = ()
    model_sha256: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise SeqdlError(f"--threads must be positive, not {self.threads}")
        if self.model is not None:
            object.__setattr__(self, "model_sha256", sha256_file(self.model))

    @property
    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True, default=str)

    def side_outputs(self, output: Path) -> list[Path]:
        return [output.with_suffix(suffix) for suffix in self.side_suffixes]


def output_name(path: Path) -> str:
    """A file name per input: readable, and distinct for inputs of the same name in different directories."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    stem = path.name.split(".")[0] or "input"
    return f"{stem}-{digest}.parquet"


def read_list(path: Path) -> list[str]:
    """``--from-list``: one path per line; blank lines and ``#`` comments are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SeqdlError(f"cannot read the input list: {exc}", str(path)) from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def is_batch_out(out: str | os.PathLike | None, workers: int | None, scheduler: str | None) -> bool:
    """Batch mode: asked for a cluster, or ``--out`` names a directory: an existing one, or any path ending in ``/``
    (which :func:`run_batch` creates)."""
    if workers is not None or scheduler is not None:
        return True
    return out is not None and (str(out).endswith(("/", os.sep)) or Path(out).is_dir())


def check_batch_options(out: Path | None, workers: int | None) -> Path:
    """The batch output directory, after the options that choose batch mode are checked (bad values first)."""
    if workers is not None and workers < 1:
        raise SeqdlError(f"--workers must be positive (worker processes to start), not {workers}")
    if out is None:
        raise SeqdlError("batch mode (--workers or --scheduler) needs --out DIR: the directory for the outputs")
    return out


def reusable(output: Path, sha256: str, job: Job) -> int | None:
    """The row count of an earlier output made from the same input, model and parameters, else None."""
    try:
        parquet = pq.ParquetFile(output)
    except (OSError, pa.ArrowInvalid):
        return None
    meta = parquet_metadata(parquet.schema_arrow.metadata)
    try:
        inputs = json.loads(meta.get("seqdl.inputs", "[]"))
    except json.JSONDecodeError:
        return None
    same = ([i.get("sha256") for i in inputs] == [sha256] and meta.get("seqdl.model_sha256") == job.model_sha256
            and meta.get("seqdl.params") == job.params_json)
    complete = all(side.is_file() for side in job.side_outputs(output))
    return parquet.metadata.num_rows if same and complete else None


def run_one(job: Job, path: str, out_dir: str) -> dict[str, Any]:
    """Do (or reuse) one input on a worker; never raises, so one bad input cannot stop the batch."""
    from threadpoolctl import threadpool_limits

    started = time.monotonic()
    output = Path(out_dir) / output_name(Path(path))
    record: dict[str, Any] = {"input": path, "sha256": None, "status": "failed", "error": None, "rows": 0,
                              "output": None, "reused": False, "seconds": 0.0, "units": 0, "side_outputs": []}
    try:
        record["sha256"] = sha256_file(path)
        rows = reusable(output, record["sha256"], job)
        if rows is None:
            output.unlink(missing_ok=True)  # until redone, no Parquet file vouches for side files left from before
            with threadpool_limits(limits=job.threads):
                result = job.run(Path(path), output)
            rows, record["units"] = result["rows"], result.get("units", 0)
        else:
            record["reused"] = True
        record.update(status="done", rows=rows, output=output.name,
                      side_outputs=[side.name for side in job.side_outputs(output)])
    except SeqdlError as exc:
        record["error"] = str(exc) if exc.path else f"{path}: {exc}"
    except OSError as exc:
        record["error"] = f"{path}: {exc.strerror or exc}"
    except Exception as exc:  # an internal error on one input is recorded, and the batch goes on
        record["error"] = f"{path}: internal error: {type(exc).__name__}: {exc}"
    if record["status"] == "failed":
        for stale in [output, *job.side_outputs(output)]:  # earlier outputs of this name no longer match the input
            stale.unlink(missing_ok=True)
    record["seconds"] = time.monotonic() - started
    return record


@dataclass
class BatchResult:
    records: list[dict[str, Any]]
    seconds: float
    out_dir: Path

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "done"]

    def summary(self) -> dict[str, Any]:
        done = [r for r in self.records if r["status"] == "done"]
        units = sum(r["units"] for r in done)
        return {"inputs": len(self.records), "done": len(done), "failed": len(self.failed),
                "reused": sum(r["reused"] for r in done), "rows": sum(r["rows"] for r in done), "units": units,
                "seconds": self.seconds, "units_per_second": units / max(self.seconds, 1e-9),
                "out": str(self.out_dir), "manifest": str(self.out_dir / MANIFEST)}


def run_batch(job: Job, inputs: Sequence[Path], out_dir: Path, *, workers: int | None = None,
              scheduler: str | None = None, quiet: bool = False, command: str = "") -> BatchResult:
    """Run ``job`` on every input on a Dask cluster; write the outputs and the manifest into ``out_dir``."""
    if not inputs:
        raise SeqdlError("no inputs")
    check_batch_options(out_dir, workers)
    if out_dir.exists() and not out_dir.is_dir():
        raise SeqdlError("exists and is not a directory; batch output needs a directory", str(out_dir))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SeqdlError(f"cannot create the output directory: {exc.strerror}", str(out_dir)) from None
    remove_stale_temps(out_dir)
    paths = _unique(inputs)
    started = time.monotonic()
    with _Cluster(workers, scheduler, job.threads, quiet) as client:
        records = _run_all(client, job, paths, out_dir, quiet)
    result = BatchResult(records, time.monotonic() - started, out_dir)
    write_manifest(out_dir, records, job, command)
    return result


def _unique(inputs: Sequence[Path]) -> list[str]:
    """Each input once (a path given twice would write the same output twice), in the order given."""
    seen: dict[str, None] = {}
    for path in inputs:
        seen.setdefault(str(path), None)
    if len(seen) < len(inputs):
        warn(f"{len(inputs) - len(seen)} input(s) given more than once; each is done once")
    return list(seen)


class _Cluster:
    """A ``distributed.Client`` on a new LocalCluster (closed on exit) or on the scheduler at an address."""

    def __init__(self, workers: int | None, scheduler: str | None, threads: int, quiet: bool) -> None:
        self.workers, self.scheduler, self.threads, self.quiet = workers, scheduler, threads, quiet
        self.cluster: Any = None
        self.client: Any = None

    def __enter__(self) -> Any:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise SeqdlError("batch mode needs Dask: pip install 'seqdl[batch]'") from None
        if self.scheduler is not None:
            try:
                self.client = Client(self.scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise SeqdlError(f"cannot reach the Dask scheduler: {exc}", self.scheduler) from None
        else:
            threads = str(self.threads)
            # one process per worker, one task at a time each; BLAS threads fixed before NumPy loads
            self.cluster = LocalCluster(
                n_workers=self.workers or 1, threads_per_worker=1, processes=True, silence_logs=logging.ERROR,
                dashboard_address=":0" if _has_dashboard() else None,
                env={"OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})
            self.client = Client(self.cluster)
        if not self.quiet and _has_dashboard():
            stderr_console.print(f"seqdl: Dask dashboard at {self.client.dashboard_link}")
        return self.client

    def __exit__(self, *exc: Any) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _has_dashboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _run_all(client: Any, job: Job, paths: list[str], out_dir: Path, quiet: bool) -> list[dict[str, Any]]:
    from distributed import as_completed

    run = uuid.uuid4().hex[:8]  # task keys unique to this run: a shared scheduler may hold another run's
    futures = {client.submit(run_one, job, path, str(out_dir), key=f"seqdl-{run}-{i}-{Path(path).name}"): i
               for i, path in enumerate(paths)}
    records: list[dict[str, Any] | None] = [None] * len(paths)
    sizes = [_file_size(path) for path in paths]
    units, started = 0, time.monotonic()
    with progress_bar(quiet, "bytes") as progress:  # input bytes (compressed, for gzip): known before any work
        task = progress.add_task("batch", total=sum(sizes), status="")
        for future in as_completed(futures):
            record = future.result()
            index = futures[future]
            records[index] = record
            units += record["units"]
            rate = units / max(time.monotonic() - started, 1e-9)
            done = sum(r is not None for r in records)
            failed = sum(r is not None and r["status"] != "done" for r in records)
            progress.update(task, advance=sizes[index], status=f"{done}/{len(paths)} inputs, {units:,} {job.unit} "
                            f"({rate:,.0f} {job.unit}/s)" + (f", {failed} failed" if failed else ""))
    return [r for r in records if r is not None]


def _file_size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:  # a missing input fails in its task, with its own message
        return 0


def write_manifest(out_dir: Path, records: list[dict[str, Any]], job: Job, command: str) -> Path:
    """``_manifest.parquet``: one row per input, in the order given, with the batch's provenance."""
    table = pa.Table.from_pylist(records, schema=MANIFEST_SCHEMA)
    meta = provenance(command or job.command, job.params, (), job.model)
    meta["seqdl.inputs"] = json.dumps([{"path": r["input"], "sha256": r["sha256"]} for r in records])
    path = out_dir / MANIFEST
    with atomic_path(path) as temp:
        pq.write_table(table.replace_schema_metadata(meta), temp)
    return path
