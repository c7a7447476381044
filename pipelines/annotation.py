"""Gene annotation (GFF3, or GenBank through Biopython) as per-base labels: coding or not, on which strand, in
which codon position.

``labels[record]`` is an ``int8`` array of shape ``(2, length)``: row 0 the +
strand, row 1 the - strand; ``-1`` for non-coding, else the base's position in
its codon (0, 1, 2) counted 5'->3' on that strand. Codon positions come from
each segment's phase (GFF3 column 8, GenBank ``/codon_start`` carried along a
``join``), so joins, programmed frameshifts and 5'-partial features are right.
A feature that wraps the origin of a circular record (GFF3 end past the record
length, or a GenBank ``join(..,1..n)``) wraps its positions modulo the length.
Pseudogenes (``pseudo=true``, ``/pseudo``) are not coding sequence.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from seqdl.errors import SeqdlError
from seqdl.io import gzip_errors, open_input, warn

NONCODING = -1
ANNOTATION_FILE = "a GFF3 or GenBank file"


@dataclass(frozen=True)
class Segment:
    start: int  # 0-based, may exceed the record length for a feature wrapping the origin
    end: int
    strand: int  # 0: +, 1: -
    phase: int  # bases before the first complete codon, counted from the segment's 5' end


@dataclass
class Gene:
    """One CDS: its segments and its 3' end (the last base of the stop codon) on the record."""

    record: str
    strand: int
    segments: list[Segment]
    name: str
    line: int = 0  # the GFF3 line of its first segment (0 for GenBank, which Biopython reads without lines)

    def three_prime(self, length: int) -> int:
        last = self.segments[-1]  # segments are in biological (5'->3') order
        return (last.end - 1) % length if self.strand == 0 else last.start % length

    def five_prime(self, length: int) -> int:
        """The first base of the start codon on the record."""
        first = self.segments[0]
        return first.start % length if self.strand == 0 else (first.end - 1) % length


@dataclass
class Annotation:
    path: Path
    genes: list[Gene] = field(default_factory=list)
    circular: set[str] = field(default_factory=set)

    def records(self) -> set[str]:
        return {gene.record for gene in self.genes}

    def labels(self, lengths: dict[str, int]) -> dict[str, np.ndarray]:
        """Per-base labels for every record in ``lengths``; checks names and coordinates against the FASTA."""
        unknown = self.records() - set(lengths)
        if unknown and not self.records() & set(lengths):
            raise SeqdlError(f"no sequence name matches a FASTA record (annotation has {sorted(unknown)[:3]}, "
                             f"FASTA has {sorted(lengths)[:3]})", str(self.path))
        if unknown:
            named = len(self.records())
            warn(f"{self.path}: {named - len(unknown)} of {named} annotated sequence names match a FASTA record; "
                 f"the genes of the others (e.g. {sorted(unknown)[0]!r}) are left out")
        out = {name: np.full((2, length), NONCODING, np.int8) for name, length in lengths.items()}
        for gene in self.genes:
            if gene.record not in lengths:
                continue
            length = lengths[gene.record]
            for segment in gene.segments:
                if segment.end > length and (gene.record not in self.circular or segment.end - length > segment.start):
                    where = f"line {gene.line}: " if gene.line else ""
                    raise SeqdlError(f"{where}feature {gene.name!r} ends at {segment.end}, past the end of record "
                                     f"{gene.record!r} ({length} bp)", str(self.path))
                out[gene.record][segment.strand][_positions(segment) % length] = _codon_positions(segment)
        return out

    def three_prime_ends(self, record: str, length: int) -> np.ndarray:
        """Sorted (strand, 3' end) pairs of the record's genes, as an (n, 2) array."""
        ends = sorted({(g.strand, g.three_prime(length)) for g in self.genes if g.record == record})
        return np.array(ends, np.int64).reshape(-1, 2)

    def gene_ends(self, record: str, length: int) -> np.ndarray:
        """Sorted (strand, 5' end, 3' end) of the record's genes, as an (n, 3) array (ends as in :class:`Gene`)."""
        ends = sorted({(g.strand, g.five_prime(length), g.three_prime(length)) for g in self.genes
                       if g.record == record})
        return np.array(ends, np.int64).reshape(-1, 3)


def _positions(segment: Segment) -> np.ndarray:
    return np.arange(segment.start, segment.end)


def _codon_positions(segment: Segment) -> np.ndarray:
    offsets = np.arange(segment.end - segment.start)
    if segment.strand == 1:
        offsets = offsets[::-1]  # 5' end of a - strand segment is its right end
    return ((offsets - segment.phase) % 3).astype(np.int8)


def read_annotation(path: str | Path) -> Annotation:
    """GFF3 or GenBank, judged by content; refused if it holds no CDS (no genes to learn or to score against)."""
    path = Path(path)
    with gzip_errors(path), open_input(path, ANNOTATION_FILE) as handle:
        head = handle.read(200)
    if head.lstrip().startswith(b"LOCUS"):
        annotation = read_genbank(path)
    elif head.startswith(b"##gff-version") or b"\t" in head:
        annotation = read_gff3(path)
    else:
        raise SeqdlError("is neither GFF3 (no '##gff-version 3' line) nor GenBank (no 'LOCUS' line)", str(path))
    if not annotation.genes:
        raise SeqdlError("holds no CDS features (no genes to train on or evaluate against)", str(path))
    return annotation


_ATTRIBUTE = re.compile(r"([^=;]+)=([^;]*)")


def read_gff3(path: str | Path) -> Annotation:
    """CDS features of a GFF3 file; segments sharing an ``ID`` are one (joined) gene."""
    path = Path(path)
    annotation = Annotation(path)
    by_id: dict[tuple[str, str], Gene] = {}
    with gzip_errors(path), open_input(path, ANNOTATION_FILE) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("##FASTA"):
                break
            if not line or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 9:
                raise SeqdlError(f"line {number}: expected 9 tab-separated columns, found {len(fields)}", str(path))
            seqid, _, kind, start, end, _, strand, phase, attributes = fields
            attrs = {key.strip(): unquote(value) for key, value in _ATTRIBUTE.findall(attributes)}
            if kind == "region" and attrs.get("Is_circular", "").lower() == "true":
                annotation.circular.add(unquote(seqid))
            if kind != "CDS" or attrs.get("pseudo", "").lower() == "true":
                continue
            try:
                first, last = int(start), int(end)
            except ValueError:
                raise SeqdlError(f"line {number}: start and end must be integers", str(path)) from None
            if first < 1 or last < first:
                raise SeqdlError(f"line {number}: bad coordinates {start}..{end}", str(path))
            if strand not in ("+", "-"):
                raise SeqdlError(f"line {number}: a CDS needs strand + or -, not {strand!r}", str(path))
            segment = Segment(first - 1, last, 0 if strand == "+" else 1, int(phase) if phase in ("0", "1", "2") else 0)
            key = (seqid, attrs.get("ID") or f"line{number}")
            gene = by_id.get(key)
            if gene is None:
                gene = by_id[key] = Gene(unquote(seqid), segment.strand, [], key[1], number)
                annotation.genes.append(gene)
            gene.segments.append(segment)
    for gene in annotation.genes:  # biological order: the 3' segment last
        gene.segments.sort(key=lambda s: s.start, reverse=gene.strand == 1)
    return annotation


def read_genbank(path: str | Path) -> Annotation:
    """CDS features of a GenBank file (Biopython), with ``/codon_start`` phase carried along joins."""
    from Bio import SeqIO

    path = Path(path)
    annotation = Annotation(path)
    try:
        with gzip_errors(path), open_input(path, ANNOTATION_FILE) as binary:
            import io

            with warnings.catch_warnings():  # malformed lines: the error below (or nothing), not a warning each
                warnings.simplefilter("ignore")
                records = list(SeqIO.parse(io.TextIOWrapper(binary, "utf-8", "replace"), "genbank"))
    except SeqdlError:
        raise
    except Exception as exc:  # Biopython reports malformed files with ValueError, IndexError, AssertionError...
        raise SeqdlError(f"GenBank parse error: {type(exc).__name__}: {exc}".splitlines()[0], str(path)) from None
    for record in records:
        if record.annotations.get("topology") == "circular":
            annotation.circular.add(record.id)
        for index, feature in enumerate(f for f in record.features if f.type == "CDS"):
            if "pseudo" in feature.qualifiers or "pseudogene" in feature.qualifiers:
                continue
            where = f"record {record.id!r}, CDS {feature.qualifiers.get('locus_tag', [index + 1])[0]}"
            if feature.location is None:
                raise SeqdlError(f"{where}: no usable location", str(path))
            codon_start = feature.qualifiers.get("codon_start", ["1"])[0]
            if codon_start not in ("1", "2", "3"):
                raise SeqdlError(f"{where}: /codon_start must be 1, 2 or 3, not {codon_start!r}", str(path))
            strand = 0 if (feature.location.strand or 1) > 0 else 1
            phase = int(codon_start) - 1
            segments, done = [], 0  # done: bases of the CDS in earlier parts
            for part in feature.location.parts:  # biological (5'->3') order
                start, end = int(part.start), int(part.end)
                if not 0 <= start < end:
                    raise SeqdlError(f"{where}: bad location {part}", str(path))
                segments.append(Segment(start, end, strand, (phase - done) % 3))
                done += end - start
            name = feature.qualifiers.get("locus_tag", [f"CDS{index}"])[0]
            annotation.genes.append(Gene(record.id, strand, segments, name))
    if not records:
        raise SeqdlError("holds no GenBank records", str(path))
    return annotation
