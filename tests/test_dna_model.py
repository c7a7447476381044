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


def test_scoring_path_matches_the_coding_network_it_stands_in_for():
    """score() runs the convolutions a few tiles at a time and the head per GRU direction: the same
    probabilities as the CodingNet module's forward."""
    from pipelines.dna_model import _coding_probs, one_hot
    from seqdl.tensor import log_softmax_array

    seqdl.manual_seed(1)
    model = DnaModel(DnaConfig(channels=4, hidden=5, lm_hidden=6, tile=30, context=8))
    batch = np.random.default_rng(2).integers(0, 5, (11, 46)).astype(np.uint8)   # more tiles than CONV_TILES
    with seqdl.no_grad():
        logits = model.coding(Tensor(one_hot(batch))).data[8:-8]                # (tile, B, 8)
        got = _coding_probs(model, batch, 8)
    expected = np.exp(log_softmax_array(logits.reshape(30, 11, 2, 4), axis=-1)[..., 1:]).transpose(1, 2, 3, 0)
    np.testing.assert_allclose(got, expected, atol=1e-6)
