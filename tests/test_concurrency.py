"""Many processes at once: 8 concurrent scans finish correctly; two writers of one path never mix their files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.fasta import decode


@pytest.fixture(scope="module")
def model(tiny_dna_model) -> Path:
    return tiny_dna_model


def genome(path: Path, seed: int, length: int) -> Path:
    seq = decode(np.random.default_rng(seed).integers(0, 4, length).astype(np.uint8))
    path.write_text(f">g{seed}\n" + "\n".join(seq[i:i + 60] for i in range(0, length, 60)) + "\n")
    return path


def scan(model: Path, fasta: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "seqdl.cli", "scan", str(fasta), "--model", str(model), "--out",
                             str(out), "--quiet", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_eight_concurrent_scans_each_match_a_scan_alone(model, tmp_path):
    inputs = [genome(tmp_path / f"g{i}.fa", i, 3000 + 700 * i) for i in range(8)]
    running = [scan(model, fasta, tmp_path / f"{fasta.stem}.parquet") for fasta in inputs]
    for process in running:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    alone = tmp_path / "alone.parquet"
    for fasta in inputs:
        process = scan(model, fasta, alone)
        process.communicate(timeout=300)
        assert pq.read_table(tmp_path / f"{fasta.stem}.parquet").equals(pq.read_table(alone))


def test_two_writers_of_one_path_leave_one_whole_file(model, tmp_path):
    a, b = genome(tmp_path / "a.fa", 1, 20_000), genome(tmp_path / "b.fa", 2, 9_000)
    expected = {}
    for fasta in (a, b):
        scan(model, fasta, tmp_path / f"{fasta.stem}.parquet").communicate(timeout=300)
        expected[fasta.stem] = pq.read_table(tmp_path / f"{fasta.stem}.parquet")
    shared = tmp_path / "shared.parquet"
    for _ in range(3):
        writers = [scan(model, a, shared), scan(model, b, shared)]
        for process in writers:
            _, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
        table = pq.read_table(shared)  # the last rename wins, and it is one writer's complete file
        source = json.loads(table.schema.metadata[b"seqdl.inputs"])[0]["path"]
        assert table.equals(expected[Path(source).stem])
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".shared")]
