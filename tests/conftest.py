"""Shared fixtures: where ../shared/data is, and a skip with a reason where it is absent."""
from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "MANIFEST.md").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (present in CI, absent in a fresh clone)")
    return SHARED_DATA


def write_tiny_dna_model(path: Path) -> Path:
    """An untrained DNA model small enough that a scan of a few kb takes milliseconds."""
    import seqdl
    from pipelines.dna_model import KIND, DnaConfig, DnaModel
    from seqdl import checkpoint

    seqdl.manual_seed(0)
    model = DnaModel(DnaConfig(channels=4, hidden=4, lm_hidden=4, tile=50, context=10))
    checkpoint.save(path, model, config=model.config.to_dict(), kind=KIND)
    return path


def write_tiny_text_model(path: Path) -> Path:
    """An untrained one-layer character model over letters, space, newline and punctuation."""
    import string

    import seqdl
    from pipelines.text_corpus import UNKNOWN, Vocabulary
    from pipelines.text_model import KIND, CharModel, ModelConfig, model_metadata
    from seqdl import checkpoint

    seqdl.manual_seed(0)
    vocab = Vocabulary((UNKNOWN, "\n", " ", *string.ascii_letters, *".,;:!?'"))
    model = CharModel(ModelConfig(vocab_size=len(vocab.chars), hidden=16, layers=1, embed=8))
    checkpoint.save(path, model, config=model.config.to_dict(), metadata=model_metadata(vocab), kind=KIND)
    return path


@pytest.fixture(scope="session")
def tiny_dna_model(tmp_path_factory) -> Path:
    return write_tiny_dna_model(tmp_path_factory.mktemp("tiny-dna") / "tiny.safetensors")


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory) -> Path:
    return write_tiny_text_model(tmp_path_factory.mktemp("tiny-text") / "tiny.safetensors")


@pytest.fixture
def run(monkeypatch, capfd):
    """``seqdl ARGS`` in-process, through the console script's ``main()``: (exit code, stdout, stderr)."""
    from seqdl import cli

    monkeypatch.setenv("SEQDL_KEEP_FREED_MEMORY", "0")  # leave the test process's allocator alone
    monkeypatch.setenv("COLUMNS", "200")  # help on one line per option
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it: put it back after

    def run_main(*args: object) -> tuple[int, str, str]:
        capfd.readouterr()
        with pytest.raises(SystemExit) as stop:
            cli.main([str(arg) for arg in args])
        out, err = capfd.readouterr()
        return stop.value.code, out, err

    return run_main


def interrupt_after_step(monkeypatch, step: int) -> None:
    """Deliver a real SIGINT (as Ctrl-C would) right after the shared loop's training step ``step``."""
    from seqdl.training import Loop

    original = Loop.train_step

    def train_step(self):
        out = original(self)
        if self.step == step:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(Loop, "train_step", train_step)
