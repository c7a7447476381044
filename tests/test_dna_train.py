"""``seqdl train dna`` and ``seqdl eval dna`` end to end on a tiny synthetic genome, and their bad inputs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import seqdl
from pipelines import dna_train
from pipelines.dna_data import Region, carve_validation, parse_region, split_regions
from pipelines.fasta import decode
from seqdl.errors import SeqdlError
from seqdl.training import Budget, metrics_path

from conftest import interrupt_after_step

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
    from pipelines.dna_model import load_dna_model
    assert load_dna_model(model)[0].genes is not None  # the gene decoder was fitted to this model and stored
    result = seqdl_cli("train", "dna", "--fasta", fasta, "--annotation", gff, "--steps", "6", "--out", model,
                       "--resume", "--json", "--quiet")
    assert result.returncode == 0 and json.loads(result.stdout)["step"] == 10, result.stderr  # 6 more steps
    result = seqdl_cli("eval", "dna", "--model", model, "--fasta", fasta, "--annotation", gff, "--region",
                       "chr:6000-8000", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["bases"] == 2000 and record["annotated_genes"] == 2
    assert 0 <= record["raw_recall"] <= 1 and record["bits_per_base"] > 1


@pytest.mark.parametrize("extra,message", [
    (["--holdout", "nochr:1-5"], "no FASTA record named 'nochr'"),
    (["--holdout", "chr:500-100"], "empty or reversed region"),
    (["--steps", "0"], "--steps 0: input should be greater than or equal to 1"),
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


# ------------------------------------------------------------------ resume
SMALL = dict(config_overrides=dict(channels=4, hidden=4, lm_hidden=4, tile=500, context=50),
             train_overrides=dict(seq_len=60, batch_size=4, seed=3), quiet=True)


def _tensors(path: Path) -> dict[str, np.ndarray]:
    saved = seqdl.load(path)
    optimizer = {f"optimizer/{i}/{k}": v for i, state in (saved.optimizer_state or {}).get("state", {}).items()
                 for k, v in state.items()}
    return {**saved.state_dict, **optimizer}


def test_resume_after_ctrl_c_reproduces_the_uninterrupted_run(genome, tmp_path, monkeypatch):
    fasta, gff = genome
    run = dict(SMALL, holdout=["chr:6000-8000"], budget=Budget(steps=12), eval_every=3)
    straight = dna_train.train(fasta, gff, tmp_path / "a.safetensors", **run)
    with monkeypatch.context() as patch:
        interrupt_after_step(patch, 5)
        first = dna_train.train(fasta, gff, tmp_path / "b.safetensors", **run)
    assert first.interrupted and first.step == 5
    resumed = dna_train.train(fasta, gff, tmp_path / "b.safetensors", resume=True, **run)
    assert not resumed.interrupted and resumed.step == 12
    assert (resumed.best_val, resumed.best_step) == (straight.best_val, straight.best_step)
    for name in ("{}.safetensors", "{}.checkpoint.safetensors"):
        a, b = _tensors(tmp_path / name.format("a")), _tensors(tmp_path / name.format("b"))
        assert a.keys() == b.keys()
        assert all(np.array_equal(a[k], b[k]) for k in a), name
    rows = [pq.read_table(metrics_path(tmp_path / f"{x}.safetensors")).drop(["seconds", "bases_per_second"])
            .to_pylist() for x in "ab"]
    assert rows[0] == rows[1] and len(rows[0]) == 12


def test_resume_keeps_the_validation_split_and_refuses_changed_options(genome, tmp_path):
    fasta, gff = genome
    model = tmp_path / "m.safetensors"
    first = dict(SMALL, train_overrides=dict(SMALL["train_overrides"], val_bases=500))
    dna_train.train(fasta, gff, model, holdout=["chr:6000-8000"], budget=Budget(steps=2), **first)
    validation = seqdl.load(model).metadata["seqdl.trained_on"]["validation"]
    assert validation == "chr:5500-6000"
    for changed, option in [(dict(first, train_overrides=dict(val_bases=900)), "--val-bases 500, not 900"),
                            (dict(first, config_overrides=dict(hidden=8)), "--hidden 4, not 8")]:
        with pytest.raises(SeqdlError, match=f"{option}: a resumed run keeps its settings"):
            dna_train.train(fasta, gff, model, holdout=[], budget=Budget(steps=1), resume=True, **changed)
    with pytest.raises(SeqdlError, match="--holdout chr:6000-8000, not chr:0-1000"):
        dna_train.train(fasta, gff, model, holdout=["chr:0-1000"], budget=Budget(steps=1), resume=True, **SMALL)
    # options not given again come from the checkpoint, not from the defaults
    more = dna_train.train(fasta, gff, model, holdout=[], budget=Budget(steps=1), resume=True, quiet=True)
    assert more.step == 3
    card = seqdl.load(model).metadata["seqdl.trained_on"]
    assert card["validation"] == validation and card["holdout"] == ["chr:6000-8000"]
