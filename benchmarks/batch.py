"""Batch throughput: ``seqdl scan`` over 20 genomes on a local Dask cluster, 1 vs 2 workers.

    python -m benchmarks.batch [--genomes 20] [--fragment-kb 400] [--repeats 3] [--model M]

The inputs are made in a temp directory from the shared E. coli and H. influenzae
genomes: whole-genome fragments of ``--fragment-kb`` from evenly spaced offsets,
every other one gzipped. Each configuration runs the real command (cluster
start-up included) into a fresh output directory; the table gives the median
wall time of ``--repeats`` runs and the speed-up over one worker with one thread.
"""
from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipelines.fasta import decode, read_records

GENOMES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "genomes"
SOURCES = ("GCF_000005845.2_ASM584v2_genomic.fna", "Haemophilus_influenzae_Rd_KW20.fna")
CONFIGS = ((1, 1), (2, 1), (1, 2))  # (workers, BLAS threads per worker)


def make_inputs(root: Path, count: int, fragment: int) -> list[Path]:
    sequences = [decode(next(iter(read_records(GENOMES / name).values()))) for name in SOURCES]
    paths = []
    for i in range(count):
        sequence = sequences[i % len(sequences)]
        start = (i // len(sequences)) * (len(sequence) - fragment) // max(count // len(sequences) - 1, 1)
        body = f">fragment{i} {SOURCES[i % 2]}:{start}-{start + fragment}\n" + "\n".join(
            sequence[j:j + 80] for j in range(start, start + fragment, 80)) + "\n"
        path = root / f"genome{i:02d}.fna" if i % 2 else root / f"genome{i:02d}.fna.gz"
        if path.suffix == ".gz":
            path.write_bytes(gzip.compress(body.encode(), compresslevel=1))
        else:
            path.write_text(body)
        paths.append(path)
    return paths


def run(inputs: list[Path], out: Path, workers: int, threads: int, model: str | None) -> float:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "seqdl.cli", "scan", *map(str, inputs), "--out", str(out), "--workers",
               str(workers), "--threads", str(threads), "--quiet"] + (["--model", model] if model else [])
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=int, default=20)
    parser.add_argument("--fragment-kb", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    if not GENOMES.is_dir():
        sys.exit(f"benchmarks.batch: the shared genomes are not at {GENOMES}")
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        inputs = make_inputs(root, args.genomes, args.fragment_kb * 1000)
        bases = args.genomes * args.fragment_kb * 1000
        times = {config: [] for config in CONFIGS}
        for _ in range(args.repeats):  # interleaved, so slow spells of a shared machine hit every configuration
            for workers, threads in CONFIGS:
                times[workers, threads].append(run(inputs, root / "out", workers, threads, args.model))
        base = statistics.median(times[CONFIGS[0]])
        rows = []
        for (workers, threads), values in times.items():
            median = statistics.median(values)
            rows.append([f"{workers} worker(s) x {threads} thread(s)", f"{median:.1f}",
                         f"{bases / median / 1e6:.3f}", f"{base / median:.2f}x"])
    print(f"seqdl scan, {args.genomes} genomes x {args.fragment_kb} kbp ({bases / 1e6:.1f} Mbp), "
          f"median of {args.repeats} runs, cluster start-up included")
    header = f"{'configuration':<34} {'seconds':>8} {'Mbp/s':>8} {'speed-up':>9}"
    print(header, "-" * len(header), sep="\n")
    for name, seconds, rate, speedup in rows:
        print(f"{name:<34} {seconds:>8} {rate:>8} {speedup:>9}")


if __name__ == "__main__":
    main()
