"""``seqdl train dna`` and ``seqdl eval dna`` end to end on a tiny synthetic genome, and their bad inputs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.dna_data import Region, carve_validation, parse_region, split_regions
from pipelines.fasta import decode
from seqdl.errors import SeqdlError

TINY = ["--channels", "4", "--hidden", "4", "--lm-hidden", "4", "--seq-len", "60", "--batch-size", "4", "--quiet"]


def seqdl_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqdl.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> tuple[Path, Path]:
    """8 kb with a 300 bp gene every 1 kb, alternating strands."""
    root = tmp_path_factory.mktemp("genome")
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 4, 8000).astype(np.uint8)
    fasta, gff = root / "g.fa", root / "g.gff3"
    fasta.write_text(">chr\n" + decode(seq) + "\n")
    lines = ["##gff-version 3"] + [f"chr\tt\tCDS\t{s + 1}\t{s + 300}\t.\t{'+-'[i % 2]}\t0\tID=g{i}"
                                   for i, s in enumerate(range(100, 8000, 1000))]
    gff.write_text("\n".join(lines) + "\n")
    return fasta, gff


def test_train_then_evaluate(genome, tmp_path):
    fasta, gff = genome
    model = tmp_path / "m.safetensors"
    result = seqdl_cli("train", "dna", "--fasta", fasta, "--annotation", gff, "--holdout", "chr:6000-8000",
                       "--steps", "4", "--out", model, "--json", *TINY)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["step"] == 4 and summary["val_bits_per_base"] > 1
    assert {p.name for p in tmp_path.iterdir()} == {"m.safetensors", "m.checkpoint.safetensors",
                                                    "m.metrics.parquet"}
    info = json.loads(seqdl_cli("info", model, "--json").stdout)
    assert info["kind"] == "dna"
    result = seqdl_cli("train", "dna", "--fasta", fasta, "--annotation", gff, "--steps", "6", "--out", model,
                       "--resume", "--json", "--quiet")
    assert result.returncode == 0 and json.loads(result.stdout)["step"] == 6, result.stderr
    result = seqdl_cli("eval", "dna", "--model", model, "--fasta", fasta, "--annotation", gff, "--region",
                       "chr:6000-8000", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["bases"] == 2000 and record["annotated_genes"] == 2
    assert 0 <= record["raw_recall"] <= 1 and record["bits_per_base"] > 1


@pytest.mark.parametrize("extra,message", [
    (["--holdout", "nochr:1-5"], "no FASTA record named 'nochr'"),
    (["--holdout", "chr:500-100"], "empty or reversed region"),
    (["--steps", "0"], "--steps must be positive"),
])
def test_train_bad_options(genome, tmp_path, extra, message):
    fasta, gff = genome
    result = seqdl_cli("train", "dna", "--fasta", fasta, "--annotation", gff, "--out", tmp_path / "m.safetensors",
                       *extra, *TINY)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_train_annotation_for_another_genome(genome, tmp_path):
    fasta, _ = genome
    gff = tmp_path / "other.gff3"
    gff.write_text("##gff-version 3\nplasmid\tt\tCDS\t1\t30\t.\t+\t0\tID=x\n")
    result = seqdl_cli("train", "dna", "--fasta", fasta, "--annotation", gff, "--out", tmp_path / "m.safetensors",
                       "--steps", "1", *TINY)
    assert result.returncode == 2 and "no sequence name matches a FASTA record" in result.stderr


def test_regions():
    lengths = {"a": 100, "b": 50}
    assert parse_region("a:10-20", lengths) == Region("a", 10, 20)
    assert parse_region("a:90-", lengths) == Region("a", 90, 100)
    assert parse_region("b", lengths) == Region("b", 0, 50)
    with pytest.raises(SeqdlError):
        parse_region("a:x", lengths)
    rest = split_regions(lengths, [Region("a", 10, 20)])
    assert rest == [Region("a", 0, 10), Region("a", 20, 100), Region("b", 0, 50)]
    train, val = carve_validation(rest, 10)
    assert val == Region("a", 90, 100) and Region("a", 20, 90) in train


def test_each_network_is_kept_at_its_own_best_step():
    from pipelines.dna_model import DnaConfig, DnaModel
    from pipelines.dna_train import keep_best

    config = DnaConfig(channels=2, hidden=2, lm_hidden=2)
    model, best = DnaModel(config), DnaModel(config)
    state: dict = {"step": 1}
    keep_best(state, best, model, {"val_coding_loss": 0.5, "val_bits_per_base": 1.9}, 1.0)
    first_lm = {k: v.copy() for k, v in model.lm.state_dict().items()}
    for p in model.parameters():
        p.data += 1.0
    state["step"] = 2
    keep_best(state, best, model, {"val_coding_loss": 0.4, "val_bits_per_base": 2.0}, 1.0)
    assert (state["best_coding_step"], state["best_lm_step"]) == (2, 1)
    assert all(np.array_equal(v, model.coding.state_dict()[k]) for k, v in best.coding.state_dict().items())
    assert all(np.array_equal(v, first_lm[k]) for k, v in best.lm.state_dict().items())
    assert state["best_val"] == pytest.approx(0.4 + 1.9 * np.log(2))
