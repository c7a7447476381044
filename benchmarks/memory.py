"""Peak resident memory of ``seqdl scan`` and ``seqdl eval text --per-line`` as the input grows.

    python -m benchmarks.memory [--scan-mbp 2 20] [--text-mb 10 100] [--json]

Inputs are made in a temp directory: one-record FASTA files cut from the shared
E. coli and H. influenzae genomes laid end to end, and tiny-shakespeare repeated.
Each command runs as its own process with the default DNA model (scan) or a
small untrained character model (scoring memory does not depend on training);
psutil samples its resident memory every 20 ms. Flat memory means the peak does
not grow with the input.
"""
from __future__ import annotations

import argparse
import json
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from .scan import big_fasta

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TEXT = SHARED / "text" / "tinyshakespeare" / "input.txt"


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Run ``command``; return its peak resident memory (MB, children included) and wall seconds."""
    started = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    if process.returncode != 0:
        sys.exit(f"benchmarks.memory: {' '.join(command)} failed: {process.stderr.read().decode()}")
    return peak / 2**20, time.perf_counter() - started


def make_text(path: Path, size: int) -> Path:
    text = TEXT.read_text()
    with path.open("w") as handle:
        for _ in range(size // len(text)):
            handle.write(text)
        handle.write(text[:size % len(text)])
    return path


def make_text_model(path: Path) -> Path:
    import seqdl
    from seqdl import checkpoint
    from pipelines.text_corpus import UNKNOWN, Vocabulary
    from pipelines.text_model import KIND, CharModel, ModelConfig, model_metadata

    seqdl.manual_seed(0)
    vocab = Vocabulary((UNKNOWN, "\n", *sorted(set(string.printable) - set(string.whitespace) | {" "})))
    model = CharModel(ModelConfig(vocab_size=len(vocab.chars), hidden=32, layers=1, embed=8))
    checkpoint.save(path, model, config=model.config.to_dict(), metadata=model_metadata(vocab), kind=KIND)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan-mbp", type=int, nargs="*", default=[2, 20], help="(none: skip the scans)")
    parser.add_argument("--text-mb", type=float, nargs="*", default=[10, 100], help="(none: skip eval text)")
    parser.add_argument("--json", action="store_true", help="JSON Lines instead of a table")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"benchmarks.memory: the shared data is not at {SHARED}")
    cli = [sys.executable, "-m", "seqdl.cli"]
    rows = []
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        for mbp in args.scan_mbp:
            fasta = big_fasta(mbp, root)
            peak, seconds = peak_rss_mb(cli + ["scan", str(fasta), "--out", str(root / "scan.parquet"), "--quiet"])
            rows.append({"command": "scan", "input": f"{mbp:g} Mbp", "peak_rss_mb": peak, "seconds": seconds})
            fasta.unlink()
        model = make_text_model(root / "tiny.safetensors")
        for mb in args.text_mb:
            text = make_text(root / f"{mb:g}mb.txt", int(mb * 1e6))
            peak, seconds = peak_rss_mb(cli + ["eval", "text", str(text), "--model", str(model), "--per-line",
                                               "--out", str(root / "lines.parquet"), "--quiet"])
            rows.append({"command": "eval text --per-line", "input": f"{mb:g} MB", "peak_rss_mb": peak,
                         "seconds": seconds})
            text.unlink()
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print("| command | input | peak resident memory | seconds |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['command']} | {row['input']} | {row['peak_rss_mb']:,.0f} MB | {row['seconds']:.0f} |")


if __name__ == "__main__":
    main()
