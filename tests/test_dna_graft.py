"""pipelines/dna_graft.py: one DNA model file takes another's language model and keeps its own coding model."""
from __future__ import annotations

import numpy as np
import pytest

import seqdl
from pipelines.dna_graft import graft_language_model
from pipelines.dna_model import DnaConfig, DnaModel, load_dna_model, score
from seqdl import checkpoint
from seqdl.errors import SeqdlError


def saved(path, config: DnaConfig, seed: int, command: str):
    seqdl.manual_seed(seed)
    model = DnaModel(config)
    checkpoint.save(path, model, kind="dna", config=config.to_dict(),
                    metadata={"seqdl.command": command, "seqdl.metrics": {"val_bits_per_base": 1.5 + seed}})
    return model


def test_the_language_model_comes_from_the_source_and_the_rest_stays(tmp_path):
    target, source = tmp_path / "target.safetensors", tmp_path / "source.safetensors"
    saved(target, DnaConfig(channels=4, hidden=5, lm_hidden=6, tile=30, context=8), 0, "train target")
    saved(source, DnaConfig(channels=3, hidden=4, lm_hidden=7, tile=30, context=8), 1, "train source")
    codes = np.random.default_rng(0).integers(0, 4, 100).astype(np.uint8)
    coding = score(load_dna_model(target)[0], codes, 0, 0, 90, 100).coding
    graft_language_model(target, source)
    model, card = load_dna_model(target)
    before, _ = load_dna_model(source)
    assert model.config.lm_hidden == 7 and model.config.hidden == 5 and model.config.channels == 4
    assert card.metadata["seqdl.command"] == "train target" and card.metadata["seqdl.lm_command"] == "train source"
    assert card.metadata["seqdl.lm_metrics"] == {"val_bits_per_base": 2.5}
    ours, theirs = score(model, codes, 0, 0, 90, 100), score(before, codes, 0, 0, 90, 100)
    np.testing.assert_array_equal(ours.bits, theirs.bits)  # the source's language model, bit for bit
    np.testing.assert_array_equal(ours.coding, coding)  # and the target's own coding model


def test_a_source_with_other_tiles_is_refused(tmp_path):
    target, source = tmp_path / "target.safetensors", tmp_path / "source.safetensors"
    saved(target, DnaConfig(channels=4, hidden=5, lm_hidden=6, tile=30, context=8), 0, "a")
    saved(source, DnaConfig(channels=4, hidden=5, lm_hidden=6, tile=40, context=8), 1, "b")
    with pytest.raises(SeqdlError, match="tiles"):
        graft_language_model(target, source)
    assert load_dna_model(target)[0].config.tile == 30
