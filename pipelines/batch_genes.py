"""One BED6 and one GFF3 for a whole batch scan: every input's gene calls, merged from the files beside its Parquet.

Two genomes may both have a record called ``contig_1``, so every record (and gene
ID) in the merged files is prefixed with its input's label: the input's file name
up to the first dot, or, where two inputs share that, the name of its Parquet file
(which carries a hash of the input's path). ``ecoli.fna.gz``'s ``NC_000913.3``
becomes ``ecoli|NC_000913.3``. The merged BED is sorted by record then start, as
``bedtools sort`` orders it; the merged GFF3 keeps the inputs' order.

Memory holds one input's gene file at a time, whatever the number of inputs.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable, TextIO

from seqdl.io import atomic_open

SEPARATOR = "|"  # allowed unescaped in GFF3 seqids and IDs; not the ':' of samtools-style regions


def input_labels(inputs: Iterable[str]) -> dict[str, str]:
    """Each input's label: its file name up to the first dot, unless another input's is the same."""
    from seqdl.batch import output_name

    paths = list(dict.fromkeys(inputs))
    stems = {path: Path(path).name.split(".")[0] or "input" for path in paths}
    counts = Counter(stems.values())
    return {path: stem if counts[stem] == 1 else output_name(Path(path)).rsplit(".", 1)[0]
            for path, stem in stems.items()}


def merge_gene_calls(records: list[dict[str, Any]], out_dir: Path, bed: Path | None, gff: Path | None) -> int:
    """Merge the gene files of the batch's done inputs (manifest ``records``) into ``bed`` and/or ``gff``; returns
    the number of genes merged."""
    labels = input_labels(r["input"] for r in records)
    sources = [(labels[r["input"]], (out_dir / r["output"]).with_suffix(".bed"))
               for r in records if r["status"] == "done"]
    genes = 0
    if bed is not None:
        with atomic_open(bed) as handle:
            genes = _merge_bed(sources, handle)
    if gff is not None:
        with atomic_open(gff) as handle:
            handle.write("##gff-version 3\n")
            genes = sum(_copy_gff(label, path.with_suffix(".gff3"), handle) for label, path in sources)
    return genes


def _merge_bed(sources: list[tuple[str, Path]], handle: TextIO) -> int:
    """Records in sorted order of their prefixed names, each record's genes by start, then end."""
    order = sorted((f"{label}{SEPARATOR}{record}", number, record)
                   for number, (label, path) in enumerate(sources) for record in _bed_records(path))
    loaded: tuple[int, list[list[str]]] = (-1, [])
    genes = 0
    for name, number, record in order:
        if loaded[0] != number:  # a file's records are usually adjacent in the order: read it once for them
            loaded = (number, [line.rstrip("\n").split("\t") for line in _lines(sources[number][1])])
        label = sources[number][0]
        rows = sorted((f for f in loaded[1] if f[0] == record), key=lambda f: (int(f[1]), int(f[2])))
        for chrom, start, end, gene, *rest in rows:
            handle.write("\t".join([name, start, end, f"{label}{SEPARATOR}{gene}", *rest]) + "\n")
        genes += len(rows)
    return genes


def _bed_records(path: Path) -> list[str]:
    return list(dict.fromkeys(line.split("\t", 1)[0] for line in _lines(path)))


def _lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as source:
        return [line for line in source if line.strip() and not line.startswith(("#", "track", "browser"))]


def _copy_gff(label: str, path: Path, handle: TextIO) -> int:
    """A per-input GFF3 with its seqids and IDs prefixed (and its own version line dropped); returns its features."""
    features = 0
    with open(path, encoding="utf-8") as source:
        for line in source:
            if line.startswith("##sequence-region"):
                _, record, rest = line.split(" ", 2)
                handle.write(f"##sequence-region {label}{SEPARATOR}{record} {rest}")
            elif line.startswith("#") or not line.strip():
                if not line.startswith("##gff-version"):
                    handle.write(line)
            else:
                fields = line.rstrip("\n").split("\t")
                fields[0] = f"{label}{SEPARATOR}{fields[0]}"
                fields[8] = ";".join(_prefix_id(label, pair) for pair in fields[8].split(";"))
                handle.write("\t".join(fields) + "\n")
                features += 1
    return features


def _prefix_id(label: str, pair: str) -> str:
    key, _, value = pair.partition("=")
    return f"{key}={label}{SEPARATOR}{value}" if key in ("ID", "Parent") else pair
