"""``--adapt``: long-ORF pseudo-labels and the fine-tuning that uses them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import pipelines.dna_adapt as dna_adapt
import seqdl
from pipelines.dna_adapt import (
    IGNORE,
    AdaptOptions,
    adapt,
    coding_loss,
    coding_share,
    long_orfs,
    open_stretch,
    pseudo_labels,
)
from pipelines.dna_data import Genome, Region
from pipelines.dna_model import KIND, DnaConfig, DnaModel
from pipelines.dna_train import Batches
from pipelines.fasta import decode, encode, reverse_complement
from pipelines.scan import ScanOptions, read_scan_metadata, scan_files
from seqdl import checkpoint
from seqdl.errors import SeqdlError
from seqdl.training import DataParallel

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
# a 600 bp gene body free of stops in its frame
BODY = "GCT" * 100 + "AAA" * 100


def test_long_orfs_on_both_strands_with_exact_coordinates():
    gene = "ATG" + BODY + "TAA"
    spacer = "TAAT" * 24  # a stop in every frame of both strands
    seq = spacer + gene + spacer + decode(reverse_complement(encode(gene))) + spacer
    orfs = {(o.start, o.end, o.strand) for o in long_orfs(encode(seq), 600)}
    plus = (96, 96 + len(gene), 0)
    minus = (plus[1] + 96, plus[1] + 96 + len(gene), 1)
    assert plus in orfs and minus in orfs
    labels = pseudo_labels(encode(seq), AdaptOptions(min_orf=600))
    assert labels[0, plus[0]:plus[1]].tolist() == [0, 1, 2] * (len(gene) // 3)
    assert labels[1, minus[0]:minus[1]].tolist() == [2, 1, 0] * (len(gene) // 3)
    assert (labels[:, :80] == -1).all()  # stops in every frame: surely non-coding
    assert set(np.unique(labels).tolist()) <= {IGNORE, -1, 0, 1, 2}


def test_open_stretch_counts_the_longest_stop_free_frame():
    seq = encode("TAA" + "C" * 30 + "TAA")
    stretch = open_stretch(seq)
    assert stretch[3] == 35  # frame 0: 30 bp between its stops, but frame 1 has none: bases 1..35
    spaced = open_stretch(encode("TAAT" * 10 + "GCT" * 40 + "TAAT" * 10))
    assert spaced[:30].max() <= 9 and spaced[60] >= 120


def test_adapt_changes_only_the_coding_model():
    seqdl.manual_seed(0)
    model = DnaModel(DnaConfig(channels=4, hidden=4, lm_hidden=4, tile=50, context=10))
    codes = {"x": encode(("TAAT" * 40 + "ATG" + BODY + "TAA") * 3)}
    tuned = adapt(model, codes, AdaptOptions(steps=3, batch_size=2, seq_len=100), quiet=True)
    before, after = model.state_dict(), tuned.state_dict()
    assert any(not np.array_equal(before[k], after[k]) for k in before if k.startswith("coding."))
    assert all(np.array_equal(before[k], after[k]) for k in before if k.startswith("lm."))


def test_adapt_is_the_same_whether_the_halves_run_side_by_side_or_not():
    """Each batch's two halves run on two threads when a second core is free, else one after the other: the same
    model either way (each product on one BLAS thread, gradients added in a fixed order), and the halves'
    gradients add up to the whole batch's (the same fine-tuning as one model on the whole batch, to round-off)."""
    seqdl.manual_seed(0)
    model = DnaModel(DnaConfig(channels=4, hidden=6, lm_hidden=4, tile=50, context=10))
    codes = {"x": encode(("TAAT" * 40 + "ATG" + BODY + "TAA") * 3)}
    options = AdaptOptions(steps=4, batch_size=4, seq_len=100)
    side_by_side = adapt(model, codes, options, quiet=True, threads=2).state_dict()
    with threadpool_limits(limits=2, user_api="blas"):   # one BLAS thread a product whatever the process has
        in_turn = adapt(model, codes, options, quiet=True, threads=1).state_dict()
    assert all(np.array_equal(side_by_side[k], in_turn[k]) for k in side_by_side)

    genome = Genome(codes, {"x": pseudo_labels(codes["x"], options)}, {})
    batch, targets = Batches(genome, [Region("x", 0, len(codes["x"]))], 100).draw(np.random.default_rng(1), 4)
    whole = dna_adapt._copy(model)
    coding_loss(whole, batch, targets).backward()
    halves = dna_adapt._copy(model)
    loss, _ = DataParallel(halves.coding, 2, workers=2).backward(coding_share, (batch, targets), len(batch))
    assert loss == pytest.approx(float(coding_loss(whole, batch, targets).data), rel=1e-5)
    for p, q in zip(whole.coding.parameters(), halves.coding.parameters()):
        np.testing.assert_allclose(q.grad, p.grad, rtol=1e-4, atol=1e-6)


def test_scan_with_adapt_records_it_in_the_metadata(tmp_path):
    seqdl.manual_seed(0)
    model = DnaModel(DnaConfig(channels=4, hidden=4, lm_hidden=4, tile=50, context=10))
    model_path = tmp_path / "m.safetensors"
    checkpoint.save(model_path, model, config=model.config.to_dict(), kind=KIND)
    fasta = tmp_path / "g.fa"
    fasta.write_text(">x\n" + ("TAAT" * 40 + "ATG" + BODY + "TAA") * 2 + "\n")
    out = tmp_path / "s.parquet"
    options = ScanOptions(window=200, stride=200, adapt=AdaptOptions(steps=2, batch_size=2, seq_len=100))
    reports, _ = scan_files([fasta], model_path, out, options, quiet=True)
    meta = read_scan_metadata(out)
    assert meta["seqdl.params"]["adapt"]["steps"] == 2
    assert reports[0]["adapted"] and meta["seqdl.adapted_inputs"] == [str(fasta)]


def test_adapt_steps_must_be_positive():
    with pytest.raises(SeqdlError, match="--adapt-steps must be positive"):
        AdaptOptions(steps=0)


def test_adapt_without_a_long_orf_warns_and_keeps_the_model(tmp_path, capsys):
    seqdl.manual_seed(0)
    model = DnaModel(DnaConfig(channels=4, hidden=4, lm_hidden=4, tile=50, context=10))
    fasta = tmp_path / "short.fa"
    fasta.write_text(">x\n" + "TAAT" * 500 + "\n")  # stops everywhere: no ORF to learn from
    assert adapt(model, fasta, AdaptOptions(steps=2, batch_size=2, seq_len=100), quiet=True) is model
    err = capsys.readouterr().err
    assert "short.fa: --adapt found no open reading frame of 600 bp or more" in err and "as it is" in err


def test_adapt_streams_a_bounded_sample_of_the_file(tmp_path):
    from pipelines.dna_adapt import PIECE, pieces_of, reservoir

    fasta = tmp_path / "g.fa"
    unit = "TAAT" * 40 + "ATG" + BODY + "TAA"
    fasta.write_text(">a\n" + unit * 400 + "\n>b\n" + unit * 300 + "\n")
    options = AdaptOptions(max_bases=2 * PIECE, seq_len=100)
    sample = reservoir(pieces_of(fasta), options)
    assert len(sample) == 2 and all(len(codes) <= PIECE for _, codes, _, _ in sample)
    assert [p[0] for p in reservoir(pieces_of(fasta), options)] == [p[0] for p in sample]  # seeded
    names = [p[0] for p in pieces_of(fasta)]
    assert names[0] == "a:0" and names[-1].startswith("b:")


def test_adapted_for_follows_the_options(tmp_path):
    from pipelines.dna_adapt import adapted_for, needs_adapt

    seqdl.manual_seed(0)
    model = DnaModel(DnaConfig(channels=4, hidden=4, lm_hidden=4, tile=50, context=10))
    codes = {"x": encode(("TAAT" * 40 + "ATG" + BODY + "TAA") * 3)}
    assert adapted_for(model, codes, None) is model
    assert not needs_adapt(model, codes)  # no fitted decoder, nothing to compare with: never automatically
    assert adapted_for(model, codes, AdaptOptions(steps=1, batch_size=2, seq_len=100, auto=True)) is model
    assert adapted_for(model, codes, AdaptOptions(steps=1, batch_size=2, seq_len=100), quiet=True) is not model


def test_adapting_is_chosen_by_gc_content_far_from_the_training_genomes():
    from dataclasses import replace

    from pipelines.dna_adapt import adapted_for, gc_fraction, needs_adapt
    from pipelines.dna_genes import shipped_gene_model

    assert gc_fraction([encode("GGCA"), encode("TTNN")]) == pytest.approx(0.5)   # N is not counted
    assert gc_fraction([encode("NNN")]) is None
    seqdl.manual_seed(0)
    model = DnaModel(DnaConfig(channels=4, hidden=4, lm_hidden=4, tile=50, context=10),
                     replace(shipped_gene_model(), gc=0.5))
    like = {"x": encode("GCTA" * 300)}                         # GC 0.5, as the training genome's
    unlike = {"x": encode(("ATG" + "AAT" * 200 + "TAA") * 2)}   # GC about 0.01
    assert not needs_adapt(model, like) and needs_adapt(model, unlike)
    auto = AdaptOptions(steps=1, batch_size=2, seq_len=100, auto=True)
    assert adapted_for(model, like, auto) is model
    assert adapted_for(model, unlike, auto, quiet=True) is not model


def test_scan_adapt_on_a_genome_without_long_orfs_falls_back_and_exits_0(tmp_path, monkeypatch, capfd):
    import warnings

    from seqdl import cli

    monkeypatch.setenv("SEQDL_KEEP_FREED_MEMORY", "0")
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it
    fasta = tmp_path / "g.fa"
    fasta.write_text(">x\n" + "TAAT" * 1000 + "\n")
    with pytest.raises(SystemExit) as stop:
        cli.main(["scan", str(fasta), "--adapt", "--quiet", "--out", str(tmp_path / "s.parquet")])
    err = capfd.readouterr().err
    assert stop.value.code == 0, err
    assert "--adapt found no open reading frame of 600 bp or more to self-train on" in err
    assert read_scan_metadata(tmp_path / "s.parquet")["seqdl.adapted_inputs"] == []


def test_scan_adapts_by_default_only_to_a_genome_of_other_gc(tmp_path, run):
    far = tmp_path / "far.fa"   # GC about 1 %, with long ORFs to learn from
    far.write_text(">far\n" + ("TAAT" * 30 + "ATG" + "AAT" * 250 + "TAA") * 4 + "\n")
    code, out, err = run("scan", far, "--adapt-steps", "1", "--json", "--out", tmp_path / "far.parquet")
    assert code == 0, err
    assert "GC content more than 5 points from the model's training genome: adapting" in err
    assert json.loads(out.splitlines()[0])["adapted"] is True
    code, out, err = run("scan", far, "--no-adapt", "--json", "--quiet", "--out", tmp_path / "off.parquet")
    assert code == 0 and json.loads(out.splitlines()[0])["adapted"] is False
    assert read_scan_metadata(tmp_path / "off.parquet")["seqdl.adapted_inputs"] == []
    example = EXAMPLES / "ecoli-k12-mg1655-8kb.fa"   # E. coli itself: nothing to adapt to
    code, out, err = run("scan", example, "--json", "--quiet", "--out", tmp_path / "ecoli.parquet")
    assert code == 0 and json.loads(out.splitlines()[0])["adapted"] is False
