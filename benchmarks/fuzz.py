"""Fuzz the file readers: random and mutated bytes must give a result or a SeqdlError, never another exception.

    python -m benchmarks.fuzz --cases 10000 --seed 0 [--reader fasta ...] [--json]

For each reader, half the cases are mutations of valid seed files (bit flips,
inserted format tokens, deleted or duplicated ranges, truncation, gzip) and
half are random bytes. Any other exception is a bug: its input is saved under
``--failures DIR`` for reproduction and counted; the exit code is then 1.
``tests/test_fuzz.py`` runs the same readers on fewer cases under hypothesis.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from seqdl.errors import SeqdlError

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "ecoli-k12-mg1655-8kb.fa"


# ------------------------------------------------------------------ readers
def read_fasta(path: Path) -> int:
    from pipelines.fasta import FastaReader

    return sum(len(chunk.core) for chunk in FastaReader(path, chunk_size=97, overlap=11))


def read_gff3(path: Path) -> int:
    from pipelines.annotation import read_gff3

    return _labels(read_gff3(path))


def read_genbank(path: Path) -> int:
    from pipelines.annotation import read_genbank

    return _labels(read_genbank(path))


def read_annotation(path: Path) -> int:
    from pipelines.annotation import read_annotation

    return _labels(read_annotation(path))


def _labels(annotation) -> int:
    """Training uses the labels, so the features must also turn into labels (or a SeqdlError)."""
    labels = annotation.labels({record: 3000 for record in annotation.records()})
    return sum(int(v.sum()) for v in labels.values())


def read_text(path: Path) -> int:
    from pipelines.text_corpus import Vocabulary, count_characters, read_text

    counts = count_characters(read_text(path, chunk_bytes=61))
    vocab, _ = Vocabulary.from_counts(counts)
    replaced = "".join(read_text(path, errors="replace", chunk_bytes=64))
    return int(vocab.encode(replaced).sum()) if replaced else 0


def read_image(path: Path) -> int:
    from vision.images import load_rgb

    return int(load_rgb(path).shape[0])


READERS: dict[str, Callable[[Path], int]] = {
    "fasta": read_fasta, "gff3": read_gff3, "genbank": read_genbank, "annotation": read_annotation,
    "text": read_text, "image": read_image,
}


# -------------------------------------------------------------------- seeds
GFF3 = (b"##gff-version 3\n##sequence-region NC_000913.3 1 3000\n"
        b"NC_000913.3\tRefSeq\tregion\t1\t3000\t.\t+\t.\tID=r;Is_circular=true\n"
        b"NC_000913.3\tRefSeq\tgene\t337\t2799\t.\t+\t.\tID=gene-thrA\n"
        b"NC_000913.3\tRefSeq\tCDS\t337\t2799\t.\t+\t0\tID=cds-thrA;Parent=gene-thrA;product=aspartokinase%3B\n"
        b"NC_000913.3\tRefSeq\tCDS\t190\t255\t.\t-\t0\tID=cds-thrL\n"
        b"NC_000913.3\tRefSeq\tCDS\t2801\t2900\t.\t+\t0\tID=j\nNC_000913.3\tRefSeq\tCDS\t2950\t2990\t.\t+\t2\tID=j\n"
        b"##FASTA\n>NC_000913.3\nACGT\n")
GENBANK = b"""LOCUS       NC_000913               3000 bp    DNA     circular CON 09-MAR-2022
DEFINITION  Escherichia coli str. K-12 substr. MG1655, complete genome.
ACCESSION   NC_000913
VERSION     NC_000913.3
FEATURES             Location/Qualifiers
     source          1..3000
                     /organism="Escherichia coli"
     CDS             190..255
                     /locus_tag="b0001"
                     /codon_start=1
     CDS             complement(337..2799)
                     /locus_tag="b0002"
     CDS             join(2801..2900,2950..2990)
                     /locus_tag="b0003"
                     /codon_start=2
     CDS             <10..>40
                     /locus_tag="b0004"
                     /pseudo
ORIGIN
        1 agcttttcat tctgactgca acgggcaata tgtctctgtg tggattaaaa aaagagtgtc
       61 tgatagcagc
//
"""
TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune — Ça va? Ünïcödé ✓ 漢字 😀\n").encode() * 3


def _images() -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = Image.fromarray(rng.integers(0, 255, (24, 32), dtype=np.uint8))
    seeds = []
    for mode, fmt in (("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("RGB", "JPEG"), ("P", "GIF"), ("CMYK", "TIFF"),
                      ("I;16", "PNG"), ("1", "BMP")):
        buffer = io.BytesIO()
        grey.convert(mode).save(buffer, fmt)
        seeds.append(buffer.getvalue())
    return seeds


def seeds(reader: str) -> list[bytes]:
    """Valid inputs each reader starts its mutations from."""
    if reader == "fasta":
        genome = EXAMPLE.read_bytes()[:4000]
        return [genome, b">a desc\nACGTNNNNacgtRYKM\n>b\n\n>c\r\nAC\r\nGT\r\n", gzip.compress(genome)]
    if reader == "gff3":
        return [GFF3]
    if reader == "genbank":
        return [GENBANK]
    if reader == "annotation":
        return [GFF3, GENBANK, gzip.compress(GFF3)]
    if reader == "text":
        return [TEXT, gzip.compress(TEXT), TEXT.replace(b"\n", b"\r\n")]
    if reader == "image":
        return _images()
    raise KeyError(reader)


# ---------------------------------------------------------------- mutations
TOKENS = [b">", b"\n", b"\r\n", b"\t", b"\x00", b"\xff", b"\xc3", b"\xe2\x82", b"@", b"LOCUS", b"//", b"ORIGIN",
          b"##gff-version 3\n", b"##FASTA\n", b"CDS", b"join(", b"complement(", b"..", b"-1", b"0", b"99999999999",
          b"=", b";", b"%", b"%zz", b"\x1f\x8b", b"IHDR", b"IDAT", b"\xff\xd8\xff", b"   ", b"\"", b"/codon_start="]


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> bytes:
    """``data`` with 1-8 random edits: flips, inserted format tokens, deletions, duplications, truncation, gzip."""
    buffer = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.randint(1, 8)):
        op = rng.randrange(7)
        at = rng.randint(0, len(buffer))
        if op == 0 and buffer:  # flip bits
            at = min(at, len(buffer) - 1)
            buffer[at] ^= 1 << rng.randrange(8)
        elif op == 1:  # a token of one of the formats
            buffer[at:at] = rng.choice(TOKENS)
        elif op == 2:  # delete a range
            del buffer[at:at + rng.randint(1, 64)]
        elif op == 3:  # duplicate a range
            buffer[at:at] = buffer[at:at + rng.randint(1, 256)]
        elif op == 4:  # truncate
            del buffer[at:]
        elif op == 5:  # random bytes
            buffer[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op == 6 and rng.random() < 0.2:  # compress what there is (formats are judged by content)
            buffer = bytearray(gzip.compress(bytes(buffer)))
    return bytes(buffer)


def random_bytes(rng: random.Random) -> bytes:
    """Random bytes, sometimes from a small alphabet so that they look a bit like a format."""
    size = rng.randint(0, 2048)
    if rng.random() < 0.5:
        return rng.randbytes(size)
    alphabet = rng.choice([b"ACGTN>\n", b"\t\n0123456789.+-CDS#", b"abc \n\xc3\xa9\xff", b"LOCUS/=\"\n ."])
    return bytes(rng.choice(alphabet) for _ in range(size))


# ------------------------------------------------------------------ running
def check(reader: Callable[[Path], int], data: bytes, path: Path) -> str:
    """``"ok"`` or ``"seqdl_error"``; any other exception propagates."""
    path.write_bytes(data)
    try:
        reader(path)
    except SeqdlError:
        return "seqdl_error"
    return "ok"


def fuzz(name: str, cases: int, seed: int, failures: Path | None, workdir: Path) -> dict:
    rng = random.Random(f"{seed}-{name}")
    reader, bases = READERS[name], seeds(name)
    counts: Counter = Counter()
    slowest = 0.0
    started = time.perf_counter()
    for index in range(cases):
        data = mutate(rng.choice(bases), rng) if index % 2 == 0 else random_bytes(rng)
        began = time.perf_counter()
        try:
            counts[check(reader, data, workdir / f"input-{name}")] += 1
        except Exception as exc:  # noqa: BLE001 - counting exactly these is the point
            counts["other_exception"] += 1
            kind = f"{type(exc).__name__}: {exc}"[:200]
            counts[f"  {kind}"] += 1
            if failures is not None:
                failures.mkdir(parents=True, exist_ok=True)
                (failures / f"{name}-{index}.bin").write_bytes(data)
                (failures / f"{name}-{index}.txt").write_text(traceback.format_exc())
        slowest = max(slowest, time.perf_counter() - began)
    return {"reader": name, "cases": cases, "ok": counts["ok"], "seqdl_error": counts["seqdl_error"],
            "other_exception": counts["other_exception"], "slowest_case_seconds": round(slowest, 4),
            "seconds": round(time.perf_counter() - started, 1),
            "exception_kinds": {k.strip(): v for k, v in counts.items() if k.startswith("  ")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases per reader")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reader", action="append", choices=sorted(READERS), help="default: all")
    parser.add_argument("--failures", type=Path, default=None, help="save failing inputs here")
    parser.add_argument("--json", action="store_true", help="one JSON object per reader")
    args = parser.parse_args()
    import warnings

    warnings.simplefilter("ignore")  # Biopython warns about every malformed line it meets
    bad = 0
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.reader or list(READERS):
            record = fuzz(name, args.cases, args.seed, args.failures, Path(workdir))
            bad += record["other_exception"]
            if args.json:
                print(json.dumps(record), flush=True)
            else:
                print(f"{name:<11} {record['cases']:>7,} cases  {record['ok']:>7,} read  {record['seqdl_error']:>7,} "
                      f"SeqdlError  {record['other_exception']:>5,} other exceptions  slowest "
                      f"{record['slowest_case_seconds']:.3f} s  ({record['seconds']:.0f} s)", flush=True)
                for kind, count in record["exception_kinds"].items():
                    print(f"{'':<13}{count:>6} x {kind}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
