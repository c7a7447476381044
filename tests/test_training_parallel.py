"""Data-parallel training steps (seqdl.training.parallel): parts add up to the batch, and the step is the same on
one core or two."""
from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import seqdl
from seqdl import nn
from seqdl.nn import functional as F
from seqdl.training import DataParallel


class Tagger(nn.Module):
    """A tiny recurrent tagger with dropout: the kind of model the text and DNA front ends train in parts."""

    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(7, 8)
        self.rnn = nn.GRU(8, 16, num_layers=2, dropout=dropout)
        self.head = nn.Linear(16, 7)

    def forward(self, x: np.ndarray) -> seqdl.Tensor:
        out, _ = self.rnn(self.embed(x.T))  # (T, B, H), sequence first
        return self.head(out)


def batch(rows: int = 10, steps: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.integers(0, 7, (rows, steps)), rng.integers(0, 7, (rows, steps))


def part_loss(net: Tagger, data: tuple[np.ndarray, np.ndarray], rows: slice):
    x, y = data[0][rows], data[1][rows]
    share = len(x) / len(data[0])
    loss = F.cross_entropy(net(x).reshape(-1, 7), y.T.reshape(-1)) * share
    return loss, {"loss_share": float(loss.data)}


def gradients(parts: int, threads: int, dropout: float, seed: int = 0) -> tuple[float, dict, list[np.ndarray]]:
    seqdl.manual_seed(0)
    model = Tagger(dropout).train()
    seqdl.manual_seed(seed)
    data = batch()
    with threadpool_limits(threads, user_api="blas"):
        value, scalars = DataParallel(model, parts).backward(part_loss, data, len(data[0]))
    return value, scalars, [p.grad.copy() for p in model.parameters()]


def test_the_parts_add_up_to_the_whole_batch() -> None:
    whole, whole_scalars, expected = gradients(parts=1, threads=1, dropout=0.0)
    for parts in (2, 3):
        value, scalars, found = gradients(parts=parts, threads=2, dropout=0.0)
        assert value == pytest.approx(whole, rel=1e-5)
        assert scalars["loss_share"] == pytest.approx(whole_scalars["loss_share"], rel=1e-5)
        for a, b in zip(found, expected):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_step_in_parts_is_the_same_on_one_core_or_two() -> None:
    """Dropout masks come from each part's own generator, gradients are added in part order: side by side or one
    after the other, the same bits."""
    _, _, one = gradients(parts=2, threads=1, dropout=0.5)
    _, _, two = gradients(parts=2, threads=2, dropout=0.5)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    _, _, other_seed = gradients(parts=2, threads=2, dropout=0.5, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(one, other_seed))  # the masks do follow the seed


def test_replicas_follow_the_models_weights() -> None:
    seqdl.manual_seed(0)
    model = Tagger(0.0).train()
    parallel = DataParallel(model, 2)
    data = batch()
    parallel.backward(part_loss, data, len(data[0]))
    for p in model.parameters():
        p.data = p.data * 0.5  # a restore that replaces the arrays
    model.zero_grad()
    parallel.backward(part_loss, data, len(data[0]))
    assert all(q.data is p.data for p, q in zip(model.parameters(), parallel.replicas[1].parameters()))


def test_a_model_with_buffers_is_not_split() -> None:
    with pytest.raises(ValueError, match="BatchNorm"):
        DataParallel(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), 2)
    DataParallel(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), 1)  # one part: the model as it is


def test_a_batch_of_fewer_rows_than_parts_runs_whole() -> None:
    seqdl.manual_seed(0)
    model = Tagger(0.0).train()
    data = batch(rows=1)
    value, _ = DataParallel(model, 2).backward(part_loss, data, 1)
    assert np.isfinite(value) and all(p.grad is not None for p in model.parameters())
