"""The DNA models' inference path: the autograd-free GRU matches the core's, and scores do not depend on batching."""
from __future__ import annotations

import numpy as np

import seqdl
from pipelines.dna_model import DnaConfig, DnaModel, gru_inference, score
from seqdl.nn.recurrent import GRU
from seqdl.tensor import Tensor


def test_inference_gru_matches_the_core_gru_both_directions():
    seqdl.manual_seed(3)
    gru = GRU(5, 7, bidirectional=True)
    x = np.random.default_rng(0).normal(size=(40, 3, 5)).astype(np.float32)
    with seqdl.no_grad():
        expected, _ = gru(Tensor(x))
    got = np.concatenate([gru_inference(x, gru, 0, block=16), gru_inference(x, gru, 1, block=16)], axis=2)
    np.testing.assert_allclose(got, expected.data, atol=1e-5)


def test_scores_do_not_depend_on_batch_or_threads():
    seqdl.manual_seed(0)
    model = DnaModel(DnaConfig(channels=4, hidden=5, lm_hidden=6, tile=30, context=8))
    codes = np.random.default_rng(1).integers(0, 5, 500).astype(np.uint8)
    one = score(model, codes, 0, 0, 500, 500, batch_tiles=1)
    many = score(model, codes, 0, 0, 500, 500, batch_tiles=7)
    np.testing.assert_allclose(one.coding, many.coding, atol=1e-6)
    np.testing.assert_allclose(one.bits, many.bits, atol=1e-5)
    assert one.coding.shape == (2, 3, 500) and np.isnan(one.bits).sum() == 2 * (codes == 4).sum()
