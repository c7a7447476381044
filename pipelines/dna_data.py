"""Labelled genomes for training and evaluation: sequences, per-base labels, and held-out regions.

A region is ``RECORD`` (the whole record) or ``RECORD:START-END`` (0-based,
half-open; ``END`` may be omitted for "to the end").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqdl.errors import SeqdlError

from .annotation import read_annotation
from .fasta import read_records


@dataclass(frozen=True)
class Region:
    record: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.record}:{self.start}-{self.end}"


@dataclass
class Genome:
    """Records (codes), their per-base labels (see :mod:`annotation`) and the annotated genes' 3' ends."""

    codes: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    three_prime: dict[str, np.ndarray]  # record -> (n, 2) array of (strand, 3' end)

    @property
    def lengths(self) -> dict[str, int]:
        return {name: len(codes) for name, codes in self.codes.items()}


def load_genome(fasta: Path, annotation: Path | None) -> Genome:
    codes = read_records(fasta)
    lengths = {name: len(seq) for name, seq in codes.items()}
    if annotation is None:
        return Genome(codes, {}, {})
    notes = read_annotation(annotation)
    labels = notes.labels(lengths)
    ends = {name: notes.three_prime_ends(name, length) for name, length in lengths.items()}
    return Genome(codes, labels, ends)


_REGION = re.compile(r"^(?P<record>[^:]+)(?::(?P<start>[\d,_]+)-(?P<end>[\d,_]*))?$")


def parse_region(text: str, lengths: dict[str, int]) -> Region:
    match = _REGION.match(text.strip())
    if not match:
        raise SeqdlError(f"--holdout {text!r}: expected RECORD or RECORD:START-END")
    record = match["record"]
    if record not in lengths:
        raise SeqdlError(f"--holdout {text!r}: no FASTA record named {record!r} (have {sorted(lengths)[:5]})")
    length = lengths[record]
    start = int(match["start"].replace(",", "").replace("_", "")) if match["start"] else 0
    end = int(match["end"].replace(",", "").replace("_", "")) if match["end"] else length
    end = min(end, length)
    if not 0 <= start < end:
        raise SeqdlError(f"--holdout {text!r}: empty or reversed region for a record of {length} bp")
    return Region(record, start, end)


def split_regions(lengths: dict[str, int], holdout: list[Region]) -> list[Region]:
    """The parts of every record outside the held-out regions."""
    out = []
    for record, length in lengths.items():
        cuts = sorted((r.start, r.end) for r in holdout if r.record == record)
        position = 0
        for start, end in cuts:
            if start > position:
                out.append(Region(record, position, start))
            position = max(position, end)
        if position < length:
            out.append(Region(record, position, length))
    return out


def carve_validation(regions: list[Region], bases: int) -> tuple[list[Region], Region]:
    """Take the last ``bases`` of the longest region as validation (for choosing the best model, never testing)."""
    longest = max(regions, key=lambda r: r.end - r.start)
    bases = min(bases, (longest.end - longest.start) // 5)
    val = Region(longest.record, longest.end - bases, longest.end)
    rest = [r if r is not longest else Region(r.record, r.start, r.end - bases) for r in regions]
    return rest, val
