"""The DNA models' inference path: the graph-free GRU matches the training one, and scores do not depend on batching."""
from __future__ import annotations

import numpy as np

import seqdl
from pipelines.dna_model import DnaConfig, DnaModel, score
from seqdl.nn.recurrent import GRU
from seqdl.tensor import Tensor


def test_inference_gru_matches_the_training_gru_both_directions():
    """Without a graph the core GRU keeps one step's gates and projects inputs in blocks: same outputs."""
    seqdl.manual_seed(3)
    gru = GRU(5, 7, bidirectional=True)
    x = np.random.default_rng(0).normal(size=(600, 3, 5)).astype(np.float32)  # several projection blocks
    expected, _ = gru(Tensor(x))
    with seqdl.no_grad():
        got, _ = gru(Tensor(x))
    assert expected.requires_grad and not got.requires_grad
    np.testing.assert_allclose(got.data, expected.data, atol=1e-5)


def test_scores_do_not_depend_on_batch_or_threads():
    seqdl.manual_seed(0)
    model = DnaModel(DnaConfig(channels=4, hidden=5, lm_hidden=6, tile=30, context=8))
    codes = np.random.default_rng(1).integers(0, 5, 500).astype(np.uint8)
    one = score(model, codes, 0, 0, 500, 500, batch_tiles=1)
    many = score(model, codes, 0, 0, 500, 500, batch_tiles=7)
    np.testing.assert_allclose(one.coding, many.coding, atol=1e-6)
    np.testing.assert_allclose(one.bits, many.bits, atol=1e-5)
    assert one.coding.shape == (2, 3, 500) and np.isnan(one.bits).sum() == 2 * (codes == 4).sum()


def test_scoring_path_matches_the_networks_it_stands_in_for(monkeypatch):
    """score() runs the convolutions time-major, each GRU a block of steps at a time (blocks of 7 here, so a tile
    spans several), the coding head per direction and both strands of the LM as one batch: the same numbers as
    the CodingNet and LanguageNet modules' forward."""
    from pipelines import dna_model
    from pipelines.dna_model import _coding_probs, _lm_bits, _rc_rows, one_hot, shifted
    from seqdl.tensor import log_softmax_array

    monkeypatch.setattr(dna_model, "RECURRENT_BLOCK", 7)
    seqdl.manual_seed(1)
    model = DnaModel(DnaConfig(channels=4, hidden=5, lm_hidden=6, tile=30, context=8))
    batch = np.random.default_rng(2).integers(0, 5, (11, 46)).astype(np.uint8)
    with seqdl.no_grad():
        logits = model.coding(Tensor(one_hot(batch))).data[8:-8]                # (tile, B, 8)
        got = _coding_probs(model, batch, 8)
        bits = _lm_bits(model, batch, 8)
        expected_bits = []
        for seqs in (batch[:, :-8], _rc_rows(batch[:, 8:])):
            logp = log_softmax_array(model.lm(Tensor(shifted(one_hot(seqs)))).data[8:], axis=-1)  # (tile, B, 4)
            target = seqs[:, 8:].T
            picked = np.take_along_axis(logp, np.minimum(target, 3)[..., None], axis=-1)[..., 0]
            expected_bits.append((np.where(target == 4, np.nan, -picked) / np.log(2)).T)
    expected = np.exp(log_softmax_array(logits.reshape(30, 11, 2, 4), axis=-1)[..., 1:]).transpose(1, 2, 3, 0)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(bits[:, 0], expected_bits[0], atol=1e-5)
    np.testing.assert_allclose(bits[:, 1], expected_bits[1][:, ::-1], atol=1e-5)
    assert np.isnan(bits).any()  # the batch holds N: its bits are NaN on both strands
