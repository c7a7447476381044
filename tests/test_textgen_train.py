"""Training a character model: a small corpus is learnt, and a run split by Ctrl-C + resume is exact."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import seqdl
from seqdl.errors import SeqdlError
from pipelines import text_train
from pipelines.text_corpus import CorpusOptions
from pipelines.text_model import load_text_model
from seqdl.training import Budget, Settings, checkpoint_path, metrics_path

from conftest import interrupt_after_step

VERSE = ("Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n"
         "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date.\n")
TINY = dict(model_overrides=dict(cell="gru", hidden=48, layers=1, embed=16),
            train_overrides=dict(seq_len=32, batch_size=16, lr=1e-2, warmup_steps=5, seed=7),
            settings=Settings(quiet=True))


def unigram_entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log(c / len(text)) for c in counts.values())


def test_small_corpus_is_learnt_well_below_unigram_entropy(tmp_path):
    corpus = tmp_path / "verse.txt"
    corpus.write_text(VERSE * 40)
    result = text_train.train([corpus], tmp_path / "verse.safetensors", budget=Budget(steps=150),
                              **dict(TINY, settings=Settings(eval_every=50, quiet=True)))
    entropy = unigram_entropy(VERSE)
    assert entropy > 2.8
    assert result.best_val < 0.35 * entropy, (result.best_val, entropy)
    model, vocab, saved = load_text_model(tmp_path / "verse.safetensors")
    assert saved.metadata["seqdl.metrics"]["val_nats_per_char"] == pytest.approx(result.best_val)
    assert saved.optimizer_state is None and set(vocab.chars) >= set(VERSE)
    rows = pq.read_table(metrics_path(tmp_path / "verse.safetensors")).to_pylist()
    assert [r["step"] for r in rows if r["train_loss"] == r["train_loss"]] == list(range(1, 151))


def _train_losses(model_path: Path) -> dict[int, float]:
    rows = pq.read_table(metrics_path(model_path)).to_pylist()
    return {r["step"]: r["train_loss"] for r in rows if r["train_loss"] == r["train_loss"]}


def test_resume_after_ctrl_c_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    corpus = tmp_path / "verse.txt"
    corpus.write_text(VERSE * 30)
    options = dict(TINY, model_overrides=dict(cell="lstm", hidden=32, layers=2, embed=8, dropout=0.2),
                   settings=Settings(eval_every=6, quiet=True))
    straight = text_train.train([corpus], tmp_path / "a.safetensors", budget=Budget(steps=40), **options)

    with monkeypatch.context() as patch:
        interrupt_after_step(patch, 17)
        first = text_train.train([corpus], tmp_path / "b.safetensors", budget=Budget(steps=40), **options)
    assert first.interrupted and first.step == 17
    assert checkpoint_path(tmp_path / "b.safetensors").is_file()
    resumed = text_train.train([corpus], tmp_path / "b.safetensors", budget=Budget(steps=40), resume=True,
                               **options)
    assert not resumed.interrupted and resumed.step == 40
    assert _train_losses(tmp_path / "b.safetensors") == _train_losses(tmp_path / "a.safetensors")
    assert resumed.best_val == straight.best_val and resumed.best_step == straight.best_step
    a, _, _ = load_text_model(tmp_path / "a.safetensors")
    b, _, _ = load_text_model(tmp_path / "b.safetensors")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert (x == y).all(), name


def test_resume_of_a_finished_run_starts_a_new_cycle(tmp_path):
    corpus = tmp_path / "verse.txt"
    corpus.write_text(VERSE * 30)
    model = tmp_path / "m.safetensors"
    text_train.train([corpus], model, budget=Budget(steps=10), **TINY)
    more = text_train.train([corpus], model, budget=Budget(steps=5), resume=True, **TINY)
    assert more.step == 15
    rows = pq.read_table(metrics_path(model)).to_pylist()
    lrs = {r["step"]: r["lr"] for r in rows if r["lr"] == r["lr"]}
    assert lrs[11] < lrs[15]  # warm-up again at the start of the new cycle
    with pytest.raises(SeqdlError, match="keeps its settings"):
        text_train.train([corpus], model, budget=Budget(steps=5), resume=True,
                         **dict(TINY, model_overrides=dict(hidden=64)))


def test_a_validation_set_larger_than_a_short_run_affords_is_sampled(tmp_path):
    """60k held-out characters, 40 tiny steps: the loop validates on a part of them, not on all 15 times.
    (The share of time this takes is tested on a simulated clock in test_training_loop.py.)"""
    rng = np.random.default_rng(0)
    corpus = tmp_path / "big.txt"
    corpus.write_text(" ".join(rng.choice(np.array(VERSE.split()), 24_000)))
    model = tmp_path / "m.safetensors"
    result = text_train.train([corpus], model, budget=Budget(steps=40),
                              **dict(TINY, corpus_options=CorpusOptions(val_fraction=0.5)))
    plan = seqdl.load(checkpoint_path(model)).metadata["seqdl.training"]["cycle"]["plan"]
    assert plan["limit"] < 20_000 and plan["every"] > 1
    validated = [r["step"] for r in pq.read_table(metrics_path(model)).to_pylist()
                 if r["val_nats_per_char"] is not None]
    assert validated[0] == 3 and validated[-1] == result.step == 40 and len(validated) <= 11
