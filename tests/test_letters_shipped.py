"""The letters models we ship in data/: small, carded, and as good on held-out EMNIST letters as their cards say."""
from __future__ import annotations

import numpy as np
import pytest

from vision.letters_data import read_letters
from vision.letters_model import CLASSES, DEFAULT_MODEL, load_letters_model

INT8_MODEL = DEFAULT_MODEL.with_name("letters-int8.safetensors")
TEST_PREFIX = "emnist-letters/emnist-letters-test-first10000"


@pytest.fixture(scope="module")
def held_out(shared_data):
    """Every fifth test image (2,000 of a..m): enough to check the recorded accuracy to about a point."""
    letters = read_letters(shared_data / TEST_PREFIX)
    return letters.subset(np.arange(0, len(letters), 5))


@pytest.mark.parametrize("path", [DEFAULT_MODEL, INT8_MODEL], ids=["float", "int8"])
def test_shipped_model_is_small_and_carries_its_card(path):
    assert path.stat().st_size < 2_000_000
    model = load_letters_model(path)
    card = model.metadata
    assert card["seqdl.classes"] == CLASSES and "seqdl.command" in card and "seqdl.seed" in card
    assert card["seqdl.trained_on"]["n_validation"] > 0
    metrics = card["seqdl.metrics"]
    assert metrics["test_n"] == 10_000 and metrics["val_n"] == card["seqdl.trained_on"]["n_validation"]
    assert metrics["test_accuracy"] >= 0.92 and metrics["val_accuracy"] >= 0.95   # a..m only: i, l and g are hard


@pytest.mark.parametrize("path", [DEFAULT_MODEL, INT8_MODEL], ids=["float", "int8"])
def test_shipped_model_scores_held_out_letters_as_its_card_says(path, held_out):
    model = load_letters_model(path)
    accuracy = float((model.classify(held_out.images).argmax(1) == held_out.labels).mean())
    assert abs(accuracy - model.metadata["seqdl.metrics"]["test_accuracy"]) < 0.015, accuracy


def test_int8_copy_loses_at_most_half_a_point():
    float_card = load_letters_model(DEFAULT_MODEL).metadata["seqdl.metrics"]
    int8_card = load_letters_model(INT8_MODEL).metadata["seqdl.metrics"]
    assert float_card["test_accuracy"] - int8_card["test_accuracy"] <= 0.005
