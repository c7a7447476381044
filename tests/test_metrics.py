"""Metric logging to Parquet (readable mid-run, resumable) and plotting."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from seqdl import SeqdlError, Tensor, nn
from seqdl.metrics import MetricLogger, gradient_norm, parameter_norms, plot_metrics


def test_rows_are_readable_while_logging_and_columns_can_appear_later(tmp_path):
    path = tmp_path / "m.metrics.parquet"
    logger = MetricLogger(path, flush_every=3)
    for step in range(1, 8):
        extra = {"val_loss": 2.0 / step} if step % 3 == 0 else {}
        logger.log(step, loss=1.0 / step, lr=0.1, **extra)
        if step == 6:
            mid = pq.read_table(path).to_pydict()  # a complete file while training goes on
            assert mid["step"] == [1, 2, 3, 4, 5, 6]
    logger.close()
    table = pq.read_table(path)
    data = table.to_pydict()
    assert data["step"] == list(range(1, 8))
    assert data["val_loss"] == [None, None, 2 / 3, None, None, 1 / 3, None]
    assert pq.ParquetFile(path).num_row_groups == 3  # one per flush
    assert all(b >= a for a, b in zip(data["seconds"], data["seconds"][1:]))


def test_resume_keeps_rows_up_to_the_resume_step(tmp_path):
    path = tmp_path / "m.parquet"
    with MetricLogger(path) as logger:
        for step in range(10):
            logger.log(step, loss=float(step))
    with MetricLogger(path, resume=True, resume_step=5) as logger:
        logger.log(6, loss=60.0)
    assert pq.read_table(path).to_pydict()["step"] == [0, 1, 2, 3, 4, 5, 6]


def test_norm_helpers():
    layer = nn.Linear(3, 2)
    layer(Tensor(np.ones((4, 3)))).sum().backward()
    norms = parameter_norms(layer)
    assert set(norms) == {"norm/weight", "norm/bias"}
    assert norms["norm/weight"] == pytest.approx(float(np.linalg.norm(layer.weight.data)))
    expected = np.sqrt((layer.weight.grad**2).sum() + (layer.bias.grad**2).sum())
    assert gradient_norm(layer.parameters()) == pytest.approx(float(expected), rel=1e-6)


def test_plot_writes_a_png_and_rejects_bad_input(tmp_path):
    path = tmp_path / "m.parquet"
    with MetricLogger(path) as logger:
        for step in range(20):
            logger.log(step, loss=np.exp(-step / 5), accuracy=step / 20)
    out = plot_metrics(path, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SeqdlError, match="no column nope"):
        plot_metrics(path, tmp_path / "x.png", columns=["nope"])
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(SeqdlError, match="not a readable metrics Parquet"):
        plot_metrics(tmp_path / "junk.parquet", tmp_path / "y.png")
    assert not (tmp_path / "y.png").exists()
