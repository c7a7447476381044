"""Streaming FASTA: plain or gzip/bgzip, any number of records, yielded as overlapping chunks of base codes.

A record never sits in memory as one Python string: lines are gathered into
blocks of about ``chunk_size`` bases, checked and encoded with one NumPy lookup
per block, and handed on as :class:`Chunk` objects whose *core* tiles the record
and whose *context* (``overlap`` bases on each side, where the record has them)
lets a model see past the core's edges.

Bases are coded ``A=0 C=1 G=2 T=3`` and ``N=4`` for N and every other IUPAC
ambiguity code; lowercase (soft-masked) and ``U`` are read as their uppercase DNA
letters. Coordinates are 0-based, half-open.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from seqdl.errors import SeqdlError
from seqdl.io import gzip_errors, open_input, stored_file, warn

A, C, G, T, N = 0, 1, 2, 3, 4
BASES = "ACGTN"
INVALID, PROTEIN = 255, 254
DEFAULT_CHUNK = 1 << 20


def _code_table() -> np.ndarray:
    """Byte -> base code; 254 for amino-acid-only letters, 255 for anything that is not sequence."""
    table = np.full(256, INVALID, np.uint8)
    for letters, code in (("A", A), ("C", C), ("G", G), ("TU", T), ("NRYSWKMBDHV", N)):
        for letter in letters:
            table[ord(letter)] = table[ord(letter.lower())] = code
    for letter in "EFIJLOPQXZ*":  # letters only a protein sequence uses
        table[ord(letter)] = table[ord(letter.lower())] = PROTEIN
    table[ord("-")] = N  # an alignment gap: no base known here
    return table


CODES = _code_table()
COMPLEMENT = np.array([T, G, C, A, N], np.uint8)


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """The other strand, read 5'->3'."""
    return COMPLEMENT[codes[::-1]]


def decode(codes: np.ndarray) -> str:
    """Codes back to letters (for tests and small outputs)."""
    return np.frombuffer(b"ACGTN", np.uint8)[codes].tobytes().decode()


def encode(text: str) -> np.ndarray:
    """Letters to codes (no checks: for sequences we made ourselves)."""
    return CODES[np.frombuffer(text.encode(), np.uint8)]


@dataclass
class Chunk:
    """A piece of one record: ``codes`` span ``[start, start + len(codes))``; the core ``[core_start, core_end)``
    is what this chunk is responsible for, the rest is context from the neighbours."""

    path: Path
    record: str
    record_index: int
    start: int
    core_start: int
    core_end: int
    codes: np.ndarray
    last: bool  # the record ends with this chunk (so ``core_end`` is the record's length)

    @property
    def core(self) -> np.ndarray:
        return self.codes[self.core_start - self.start:self.core_end - self.start]


def _first_line_problem(line: bytes) -> str:
    """Why a file whose first non-blank line is ``line`` is not FASTA."""
    if b"\x00" in line:
        return "is binary data, not a FASTA file"
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return "is binary or non-ASCII data, not a FASTA file"
    if text.startswith("@"):
        return "looks like FASTQ (first line starts with '@'); give a FASTA file"
    if text.startswith("LOCUS"):
        return "looks like GenBank (first line starts with 'LOCUS'); give a FASTA file (GenBank is read as annotation)"
    if text.startswith("##gff-version"):
        return "looks like GFF3, not FASTA"
    return f"line 1: not FASTA: expected a '>' header line, found {text[:30].strip()!r}"


class FastaReader:
    """Iterate over a FASTA file's records as overlapping chunks (see the module docstring).

    ``chunk_size`` bases of core per chunk (the last chunk of a record may be
    shorter), ``overlap`` bases of context on each side.
    """

    def __init__(self, path: str | Path, chunk_size: int = DEFAULT_CHUNK, overlap: int = 0) -> None:
        if chunk_size < 1 or overlap < 0:
            raise ValueError(f"chunk_size must be positive and overlap >= 0, got {chunk_size}, {overlap}")
        self.path = Path(path)
        self.chunk_size, self.overlap = chunk_size, overlap
        self.records: list[tuple[str, int]] = []  # (name, length) of every non-empty record read so far
        self._unreported: list[str] = []  # empty-record warnings held back until a record with sequence is seen
        self._raw: BinaryIO | None = None  # the file as stored (under the gzip layer, if any), while iterating

    @property
    def bytes_read(self) -> int:
        """Bytes of the file as stored (compressed, for gzip) read so far: progress against its size on disk."""
        return self._raw.tell() if self._raw is not None and not self._raw.closed else 0

    def __iter__(self) -> Iterator[Chunk]:
        with open_input(self.path, "a FASTA file") as handle, gzip_errors(self.path):
            self._raw = stored_file(handle)
            yield from self._chunks(handle)

    def _chunks(self, handle: BinaryIO) -> Iterator[Chunk]:
        names: set[str] = set()
        record: _RecordBuffer | None = None
        seen_header = False
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip(b"\r\n")
            if line.startswith(b">"):
                if record is not None:
                    yield from record.finish()
                    self._close(record)
                seen_header = True
                name = self._record_name(line, number, names)
                record = _RecordBuffer(self, name, len(self.records), number)
                continue
            if not seen_header:
                if not line.strip():
                    continue
                raise SeqdlError(_first_line_problem(line), str(self.path))
            line = line.strip()
            if line:
                yield from record.add(line, number)
        if not seen_header:
            raise SeqdlError("is empty" if self._is_empty() else "holds no FASTA records", str(self.path))
        yield from record.finish()
        self._close(record)
        if not self.records:
            raise SeqdlError("holds only empty records (no sequence)", str(self.path))

    def _is_empty(self) -> bool:
        return self.path.stat().st_size == 0

    def _record_name(self, line: bytes, number: int, names: set[str]) -> str:
        try:
            header = line[1:].decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SeqdlError(f"line {number}: header is not UTF-8 text", str(self.path)) from None
        name = header.split()[0] if header else ""
        if not name:
            raise SeqdlError(f"line {number}: header has no record name", str(self.path))
        if name in names:
            raise SeqdlError(f"line {number}: duplicate record name {name!r}", str(self.path))
        names.add(name)
        return name

    def _close(self, record: "_RecordBuffer") -> None:
        # Warnings about empty records wait for a record with sequence: a file of only empty records gets its one
        # error line and nothing else.
        if record.length == 0:
            self._unreported.append(f"{self.path}: record {record.name!r} (line {record.header_line}) has no "
                                    f"sequence; skipped")
        else:
            self.records.append((record.name, record.length))
        if self.records:
            for message in self._unreported:
                warn(message)
            self._unreported = []


class _RecordBuffer:
    """The bases of one record not yet handed out, with the line numbers needed to report a bad character."""

    def __init__(self, reader: FastaReader, name: str, index: int, header_line: int) -> None:
        self.reader, self.name, self.index, self.header_line = reader, name, index, header_line
        self.lines: list[bytes] = []
        self.line_numbers: list[int] = []
        self.pending = 0  # bases in self.lines
        self.buffer = np.empty(0, np.uint8)  # encoded bases from ``buffer_start`` on
        self.buffer_start = 0
        self.core_start = 0  # first base not yet covered by a chunk's core
        self.length = 0

    def add(self, line: bytes, number: int) -> Iterator[Chunk]:
        self.lines.append(line)
        self.line_numbers.append(number)
        self.pending += len(line)
        if self.pending >= self.reader.chunk_size:
            self._encode_pending()
            yield from self._emit(final=False)

    def finish(self) -> Iterator[Chunk]:
        self._encode_pending()
        yield from self._emit(final=True)

    def _encode_pending(self) -> None:
        if not self.lines:
            return
        raw = np.frombuffer(b"".join(self.lines), np.uint8)
        codes = CODES[raw]
        bad = np.flatnonzero(codes >= PROTEIN)
        if bad.size:
            self._report(raw, codes, int(bad[0]))
        self.length += len(codes)
        self.buffer = np.concatenate([self.buffer, codes]) if self.buffer.size else codes
        self.lines, self.line_numbers, self.pending = [], [], 0

    def _report(self, raw: np.ndarray, codes: np.ndarray, position: int) -> None:
        ends = np.cumsum([len(line) for line in self.lines])
        line_index = int(np.searchsorted(ends, position, side="right"))
        number = self.line_numbers[line_index]
        char = chr(raw[position])
        where = f"record {self.name!r}, line {number}"
        if codes[position] == PROTEIN:
            raise SeqdlError(f"{where}: looks like protein FASTA (amino-acid letter {char!r}); give nucleotide "
                             f"sequence", str(self.reader.path))
        raise SeqdlError(f"{where}: non-sequence character {char!r}", str(self.reader.path))

    def _emit(self, final: bool) -> Iterator[Chunk]:
        size, overlap = self.reader.chunk_size, self.reader.overlap
        while True:
            available = self.buffer_start + len(self.buffer)
            if final:
                if self.core_start >= available:
                    return
                core_end = min(self.core_start + size, available)
            else:
                core_end = self.core_start + size
                if core_end + overlap >= available:  # keep a base back: the final chunk must say it is last
                    return
            start = max(self.core_start - overlap, 0)
            stop = min(core_end + overlap, available)
            codes = self.buffer[start - self.buffer_start:stop - self.buffer_start]
            yield Chunk(self.reader.path, self.name, self.index, start, self.core_start, core_end, codes,
                        last=final and core_end == available)
            self.core_start = core_end
            keep_from = max(self.core_start - overlap, 0)
            self.buffer = self.buffer[keep_from - self.buffer_start:].copy()
            self.buffer_start = keep_from


def read_records(path: str | Path) -> dict[str, np.ndarray]:
    """Every record whole, as codes (for training and evaluation on genomes that fit in memory)."""
    reader = FastaReader(path, chunk_size=DEFAULT_CHUNK * 8)
    parts: dict[str, list[np.ndarray]] = {}
    for chunk in reader:
        parts.setdefault(chunk.record, []).append(chunk.core)
    return {name: np.concatenate(pieces) for name, pieces in parts.items()}
