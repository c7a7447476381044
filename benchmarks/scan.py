"""Benchmark of ``seqdl scan`` on E. coli K-12: speed, memory, gene-finding accuracy, bits/base, with yardsticks.

    python -m benchmarks.scan [--model data/dna-ecoli.safetensors] [--big 20,200]

1. Scan time and peak resident memory of ``seqdl scan`` on the full genome (both
   strands, all outputs), as a separate process (peak RSS from GNU ``/usr/bin/time``),
   and its ratio to pyrodigal's train + find time on the same genome, measured in the same run.
   ``--big 20,200`` also scans single-record FASTA files of 20 and 200 Mbp made by
   concatenating genomes (in a temp directory), for the memory target.
2. Base-level strand-specific coding P/R/F1, gene 3'-end sensitivity/precision, exact
   gene (both ends) sensitivity/precision and the 5'-end accuracy of the genes whose 3'
   end is right, on the held-out region (3,700,000-end of NC_000913.3) and the whole
   genome, for seqdl and for pyrodigal side by side (self-trained on the genome; skipped
   if not installed); the same on H. influenzae (never trained on), with ``--no-adapt`` and
   as ``seqdl scan`` runs by default (adapting where the GC content is far from E. coli's).
   Then C. diphtheriae NCTC11397 (the genome pyrodigal ships for its tests; neither the
   network nor the decoder ever saw it, and its GC content, 53.5 %, is near E. coli's): it has
   no annotation here, so seqdl's calls (as ``seqdl scan`` makes them by default) are compared
   with Prodigal's: the share of Prodigal's genes whose 3' end (and whole gene) seqdl calls too,
   and the share of seqdl's that Prodigal calls.
3. Bits/base on the held-out region (both strands): the model's language model vs
   order-k Markov models trained on the same training bases (k chosen on the
   validation stretch the trainer uses, all k printed).

Needs ../shared/data (the genome and its annotation).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipelines.annotation import read_annotation
from pipelines.dna_adapt import AdaptOptions
from pipelines.dna_data import Genome, Region, carve_validation, load_genome, split_regions
from pipelines.dna_eval import overlap_counts, precision_recall_f1, evaluate
from pipelines.dna_genes import GeneCall, call_mask
from pipelines.dna_model import default_model_path
from pipelines.fasta import N, decode, read_records, reverse_complement
from pipelines.scan import ScanOptions, scan_files

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "genomes"
FASTA = DATA / "GCF_000005845.2_ASM584v2_genomic.fna"
GFF = DATA / "GCF_000005845.2_ASM584v2_genomic.gff"
OTHER_FASTA = DATA / "Haemophilus_influenzae_Rd_KW20.fna"  # never trained on
OTHER_GB = DATA / "Haemophilus_influenzae_Rd_KW20.gb"
RECORD = "NC_000913.3"
HOLDOUT = Region(RECORD, 3_700_000, 4_641_652)
VAL_BASES = 150_000


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for index, row in enumerate([header, *rows]):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print()


def scan_run(fasta: Path, model: Path, out_dir: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one ``seqdl scan`` process with every output (GNU time's %M: the
    child's own peak, where ``RUSAGE_CHILDREN`` would give the largest of all children so far)."""
    command = [sys.executable, "-m", "seqdl.cli", "scan", str(fasta), "--model", str(model), "--quiet",
               "--out", str(out_dir / "scan.parquet"), "--bed", str(out_dir / "genes.bed"),
               "--gff", str(out_dir / "genes.gff3"), "--bedgraph", str(out_dir / "tracks.bedgraph")]
    report = out_dir / "time.txt"
    started = time.perf_counter()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), *command], check=True)
    seconds = time.perf_counter() - started
    return seconds, int(report.read_text().split()[-1]) / 1024


def big_fasta(megabases: int, directory: Path) -> Path:
    """Exactly ``megabases`` Mbp as ONE record (the hard case for memory): the E. coli and H. influenzae genomes
    concatenated in turn, 80 bases a line."""
    genomes = [decode(next(iter(read_records(path).values()))) for path in (FASTA, OTHER_FASTA)]
    path = directory / f"big{megabases}.fa"
    target, total, index = megabases * 1_000_000, 0, 0
    with open(path, "w") as handle:
        handle.write(f">concat{megabases} E. coli K-12 and H. influenzae Rd genomes concatenated\n")
        while total < target:
            seq = genomes[index % 2][:target - total]
            handle.writelines(seq[i:i + 80] + "\n" for i in range(0, len(seq), 80))
            total, index = total + len(seq), index + 1
    return path


def pyrodigal_calls(codes: np.ndarray) -> tuple[list[GeneCall], float] | None:
    """Prodigal's genes (self-trained on this genome, as ``prodigal`` does by default) and its seconds."""
    try:
        import pyrodigal
    except ImportError:
        return None
    started = time.perf_counter()
    text = np.frombuffer(b"ACGTN", np.uint8)[codes].tobytes()
    finder = pyrodigal.GeneFinder()
    finder.train(text)
    genes = finder.find_genes(text)
    calls = [GeneCall(g.begin - 1, g.end, 0 if g.strand == 1 else 1, g.score, "") for g in genes]
    return calls, time.perf_counter() - started


def gene_metrics(calls: list[GeneCall], genome: Genome, annotation: Path, region: Region) -> dict[str, float]:
    """The figures ``seqdl eval dna`` gives, for calls made by another tool."""
    labels = genome.labels[region.record][:, region.start:region.end] >= 0
    length = len(genome.codes[region.record])
    mask = call_mask(calls, length)[:, region.start:region.end]
    precision, recall, f1 = precision_recall_f1(*overlap_counts(mask, labels))
    predicted = {(c.strand, c.five_prime, c.three_prime) for c in calls if region.start <= c.three_prime < region.end}
    annotated = {(s, f, t) for s, f, t in read_annotation(annotation).gene_ends(region.record, length).tolist()
                 if region.start <= t < region.end}
    three = len({(s, t) for s, _, t in predicted} & {(s, t) for s, _, t in annotated})
    exact = len(predicted & annotated)
    return {"genes_precision": precision, "genes_recall": recall, "genes_f1": f1,
            "three_prime_sensitivity": three / len(annotated), "three_prime_precision": three / len(predicted),
            "exact_gene_sensitivity": exact / len(annotated), "exact_gene_precision": exact / len(predicted),
            "five_prime_accuracy": exact / three}


GENE_KEYS = ("genes_precision", "genes_recall", "genes_f1", "three_prime_sensitivity", "three_prime_precision",
             "exact_gene_sensitivity", "exact_gene_precision", "five_prime_accuracy")


def prodigal_agreement(model: Path, directory: Path) -> list[str] | None:
    """seqdl's default scan of pyrodigal's test genome against pyrodigal's calls (see the module docstring)."""
    try:
        import pyrodigal
    except ImportError:
        return None
    path = Path(pyrodigal.__file__).parent / "tests" / "data" / "GCF_001457455.1_NCTC11397_genomic.fna.gz"
    (codes,) = read_records(path).values()
    calls, _ = pyrodigal_calls(codes)
    bed = directory / "cdip.bed"
    scan_files([path], model, directory / "cdip.parquet", ScanOptions(adapt=AdaptOptions(auto=True)), bed=bed,
               quiet=True)
    ours = set()
    for line in bed.read_text().splitlines():
        _, start, end, _, _, strand = line.split("\t")[:6]
        call = GeneCall(int(start), int(end), 0 if strand == "+" else 1, 0.0, "")
        ours.add((call.strand, call.five_prime, call.three_prime))
    theirs = {(c.strand, c.five_prime, c.three_prime) for c in calls}
    three = {(s, t) for s, _, t in ours} & {(s, t) for s, _, t in theirs}
    exact = ours & theirs
    return ["C. diphtheriae: seqdl vs pyrodigal", f"{len(three) / len(theirs):.3f}", f"{len(three) / len(ours):.3f}",
            f"{len(exact) / len(theirs):.3f}", f"{len(exact) / len(ours):.3f}", f"{len(exact) / len(three):.3f}"]


def gene_row(name: str, m: dict[str, float]) -> list[str]:
    return [name, *(f"{m[k]:.3f}" for k in GENE_KEYS), f"{m['seconds']:.1f}"]


def markov_bits(genome: Genome, train: list[Region], test: Region, k: int) -> float:
    """Bits/base on ``test`` (both strands) of an order-k Markov chain counted on ``train`` (both strands),
    with add-one smoothing."""
    counts = np.zeros(4 ** (k + 1), np.int64)
    for region in train:
        seq = genome.codes[region.record][region.start:region.end]
        for strand in (seq, reverse_complement(seq)):
            counts += np.bincount(_kmers(strand, k + 1), minlength=len(counts))
    table = counts.reshape(-1, 4) + 1.0
    logp = np.log2(table / table.sum(axis=1, keepdims=True)).ravel()
    seq = genome.codes[test.record][max(test.start - k, 0):test.end]
    total, n = 0.0, 0
    for strand in (seq, reverse_complement(seq)):
        ids = _kmers(strand, k + 1)
        total -= logp[ids].sum()
        n += len(ids)
    return total / n


def _kmers(seq: np.ndarray, length: int) -> np.ndarray:
    """Base-4 ids of every ``length``-mer without N."""
    windows = np.lib.stride_tricks.sliding_window_view(seq, length)
    windows = windows[(windows < N).all(axis=1)]
    return (windows.astype(np.int64) * (4 ** np.arange(length - 1, -1, -1))).sum(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--big", default="", help="comma-separated sizes in Mbp to scan for memory, e.g. 20,200")
    parser.add_argument("--max-k", type=int, default=10)
    args = parser.parse_args()
    if not FASTA.exists():
        sys.exit(f"needs the genomes in {DATA}")
    rows = []
    genome = load_genome(FASTA, GFF)
    prodigal = pyrodigal_calls(genome.codes[RECORD])
    with tempfile.TemporaryDirectory() as tmp:
        seconds, peak = scan_run(FASTA, args.model, Path(tmp))
        rows.append(["seqdl scan E. coli 4.64 Mbp (s / peak MB)", f"{seconds:.1f} s", f"{peak:.0f} MB"])
        if prodigal is not None:   # the yardstick: within 8x of pyrodigal's train + find, same run
            rows.append(["pyrodigal train + find, E. coli", f"{prodigal[1]:.1f} s", ""])
            rows.append(["seqdl scan / pyrodigal", f"{seconds / prodigal[1]:.1f}x", ""])
        for size in [int(s) for s in args.big.split(",") if s]:
            path = big_fasta(size, Path(tmp))
            seconds, peak = scan_run(path, args.model, Path(tmp))
            rows.append([f"seqdl scan {size} Mbp (s / peak MB)", f"{seconds:.1f} s", f"{peak:.0f} MB"])
            path.unlink()
    print_table(["speed", "time", "memory"], rows)

    whole = Region(RECORD, 0, genome.lengths[RECORD])
    ours_held = evaluate(args.model, FASTA, GFF, [str(HOLDOUT)])
    rows = [gene_row("seqdl, E. coli held out", ours_held),
            gene_row("seqdl, E. coli whole genome", evaluate(args.model, FASTA, GFF, None))]
    if prodigal is not None:
        calls, seconds = prodigal
        for name, region in (("pyrodigal, E. coli held out", HOLDOUT), ("pyrodigal, E. coli whole genome", whole)):
            rows.append(gene_row(name, {**gene_metrics(calls, genome, GFF, region), "seconds": seconds}))
    if OTHER_FASTA.exists():
        rows.append(gene_row("seqdl --no-adapt, H. influenzae", evaluate(args.model, OTHER_FASTA, OTHER_GB, None)))
        chosen = evaluate(args.model, OTHER_FASTA, OTHER_GB, None, adapt_options=AdaptOptions(auto=True))
        rows.append(gene_row(f"seqdl (default: {'adapted' if chosen['adapted'] else 'not adapted'}), H. influenzae",
                             chosen))
        other = load_genome(OTHER_FASTA, OTHER_GB)
        (record, length), = other.lengths.items()
        prodigal = pyrodigal_calls(other.codes[record])
        if prodigal is not None:
            calls, seconds = prodigal
            rows.append(gene_row("pyrodigal, H. influenzae",
                                 {**gene_metrics(calls, other, OTHER_GB, Region(record, 0, length)),
                                  "seconds": seconds}))
    print_table(["genes", "base P", "base R", "base F1", "3' sens", "3' prec", "exact sens", "exact prec",
                 "5' acc", "seconds"], rows)
    with tempfile.TemporaryDirectory() as tmp:
        agreement = prodigal_agreement(args.model, Path(tmp))
    if agreement is not None:
        print_table(["never seen (Prodigal's calls as the reference)", "3' sens", "3' prec", "exact sens",
                     "exact prec", "5' acc"], [agreement])

    train, val = carve_validation(split_regions(genome.lengths, [HOLDOUT]), VAL_BASES)
    rows = []
    best_k, best_val = 0, np.inf
    for k in range(0, args.max_k + 1):
        on_val = markov_bits(genome, train, val, k)
        held = markov_bits(genome, train + [val], HOLDOUT, k)
        rows.append([f"order-{k} Markov", f"{on_val:.4f}", f"{held:.4f}"])
        if on_val < best_val:
            best_k, best_val = k, on_val
    rows.append([f"seqdl LM (best Markov k={best_k})", "", f"{ours_held['bits_per_base']:.4f}"])
    print_table(["bits/base", "validation", "held out"], rows)


if __name__ == "__main__":
    main()
