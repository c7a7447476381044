"""The per-input work of ``seqdl scan`` and ``seqdl eval text`` as batch jobs (see :mod:`seqdl.batch`).

Each job function runs on a Dask worker: it loads the model once per worker
process (cached by path and file stamp) and writes one input's Parquet file (and,
for a scan, its gene calls as BED6 and GFF3 beside it, written by the very code
single-process scans use, so both modes give the same genes).
"""
from __future__ import annotations

import os
from dataclasses import replace
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from seqdl.batch import Job
from seqdl.io import provenance

from .dna_model import DnaModel, load_dna_model
from .scan import ScanOptions, scan_files, scan_params
from .text_eval import score_files
from .text_model import load_text_model


def _stamp(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=2)
def _dna_model(path: str, stamp: tuple[int, int]) -> DnaModel:
    return load_dna_model(path)[0]


@lru_cache(maxsize=2)
def _text_model(path: str, stamp: tuple[int, int]) -> tuple[Any, Any]:
    model, vocab, _ = load_text_model(Path(path))
    return model, vocab


def model_loads() -> int:
    """How many models this process has loaded (a test checks: once per worker, not once per input)."""
    return _dna_model.cache_info().misses + _text_model.cache_info().misses


GENE_SUFFIXES = (".bed", ".gff3")


def _scan_one(model_path: Path, options: ScanOptions, command: str, path: Path, out: Path) -> dict[str, int]:
    model = _dna_model(str(model_path), _stamp(model_path))
    bed, gff = (out.with_suffix(suffix) for suffix in GENE_SUFFIXES)
    _, summary = scan_files([path], model_path, out, options, bed=bed, gff=gff, quiet=True, command=command,
                            params=scan_params(options), model=model)
    return {"rows": summary["windows"], "units": summary["bases"]}


def scan_job(model_path: Path, options: ScanOptions, command: str, threads: int = 1) -> Job:
    """Scan one FASTA per task on ``threads`` cores of a worker (BLAS and the scan's own threads); its gene calls go
    to ``<output>.bed`` and ``<output>.gff3``."""
    options = replace(options, threads=threads)
    return Job(command, partial(_scan_one, model_path, options, command), scan_params(options), model_path, "bp",
               threads=threads, side_suffixes=GENE_SUFFIXES)


def text_params(encoding: str, errors: str) -> dict[str, Any]:
    return {"encoding": encoding, "errors": errors, "per_line": True}


def _score_one(model_path: Path, encoding: str, errors: str, command: str, path: Path, out: Path) -> dict[str, int]:
    model, vocab = _text_model(str(model_path), _stamp(model_path))
    meta = provenance(command, text_params(encoding, errors), [path], model_path)
    [score] = score_files(model, vocab, [path], encoding, errors, out, meta, quiet=True)
    return {"rows": score.lines, "units": score.characters}


def text_job(model_path: Path, encoding: str, errors: str, command: str, threads: int = 1) -> Job:
    return Job(command, partial(_score_one, model_path, encoding, errors, command), text_params(encoding, errors),
               model_path, "chars", threads=threads)
