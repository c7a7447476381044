"""The Shakespeare model we ship in data/: the README's first command works, and the model is as good as it says."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

import seqdl
from pipelines.text_model import DEFAULT_MODEL

SPEAKER = re.compile(r"^[A-Z][A-Za-z ]*:$", re.MULTILINE)


def _readme_sample() -> str:
    result = subprocess.run([sys.executable, "-m", "seqdl.cli", "textgen", "--no-train", "--prompt", "ROMEO:",
                             "--length", "500", "--seed", "7"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_first_command_samples_something_shaped_like_the_play():
    sample = _readme_sample()
    assert sample.startswith("ROMEO:\n") and len(sample) >= 500
    assert len(SPEAKER.findall(sample)) >= 2, sample  # speaker names in capitals, then a colon, on their own line
    assert _readme_sample() == sample  # --seed makes it repeatable


def test_sampled_words_are_mostly_real_words(shared_data):
    play = (shared_data / "text" / "tinyshakespeare" / "input.txt").read_text()
    known = set(re.findall(r"[a-z']+", play.lower()))
    words = re.findall(r"[a-z']+", _readme_sample().lower())
    real = sum(word in known for word in words) / len(words)
    assert len(words) > 60 and real > 0.85, real


def test_shipped_model_scores_the_held_out_tenth_as_recorded(shared_data, tmp_path):
    text = (shared_data / "text" / "tinyshakespeare" / "input.txt").read_text()
    held_out = tmp_path / "held_out.txt"
    held_out.write_text(text[len(text) - round(len(text) * 0.1):])  # the validation split training used
    result = subprocess.run([sys.executable, "-m", "seqdl.cli", "eval", "text", str(held_out), "--json", "--quiet"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = [line for line in result.stdout.splitlines()][-1]
    nats = float(re.search(r'"nats_per_char":([0-9.]+)', summary).group(1))
    recorded = seqdl.load(DEFAULT_MODEL, kind="text").metadata["seqdl.metrics"]["val_nats_per_char"]
    assert nats <= 1.50 and nats == pytest.approx(recorded, abs=0.01), (nats, recorded)
