"""Metric logging to Parquet (readable mid-run, crash-safe, resumable) and plotting."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from seqdl import SeqdlError, Tensor, nn
from seqdl.metrics import MetricLogger, gradient_norm, metric_panels, parameter_norms, plot_metrics


def test_rows_are_readable_while_logging_and_columns_can_appear_later(tmp_path):
    path = tmp_path / "m.metrics.parquet"
    logger = MetricLogger(path, flush_every=3, metadata={"seqdl.command": "seqdl train text"})
    for step in range(1, 8):
        extra = {"val_loss": 2.0 / step} if step % 3 == 0 else {}
        logger.log(step, loss=1.0 / step, lr=Tensor(np.float32(0.5)), **extra)
        if step == 6:  # a complete file while training goes on
            assert pq.read_table(path).column("step").to_pylist() == [1, 2, 3, 4, 5, 6]
            assert pq.read_table(path).column("val_loss").null_count == 4
    logger.close()
    table = pq.read_table(path)
    assert table.column_names == ["step", "seconds", "loss", "lr", "val_loss"]  # order of first appearance
    data = table.to_pydict()
    assert data["step"] == list(range(1, 8)) and data["lr"] == [0.5] * 7
    assert data["val_loss"] == [None, None, 2 / 3, None, None, 1 / 3, None]
    assert pq.ParquetFile(path).num_row_groups == 3  # one per flush
    assert all(b >= a for a, b in zip(data["seconds"], data["seconds"][1:]))
    assert table.schema.metadata[b"seqdl.command"] == b"seqdl train text"
    with pytest.raises(RuntimeError, match="closed"):
        logger.log(8, loss=0.1)


def test_time_based_flush_and_flush_on_exception(tmp_path):
    path = tmp_path / "m.parquet"
    with MetricLogger(path, flush_every=1000, flush_seconds=0.0) as logger:
        logger.log(0, loss=1.0)
        assert pq.read_table(path).num_rows == 1
    with pytest.raises(KeyboardInterrupt):
        with MetricLogger(path, flush_every=1000) as logger:
            logger.log(0, loss=1.0)
            logger.log(1, loss=0.5)
            raise KeyboardInterrupt
    assert pq.read_table(path).column("loss").to_pylist() == [1.0, 0.5]


def test_failed_flush_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.parquet"
    logger = MetricLogger(path, flush_every=2)
    logger.log(0, loss=1.0)
    logger.log(1, loss=0.9)

    class Broken:
        def __init__(self, where, schema):
            open(where, "wb").write(b"PAR1 half a file")

        def __enter__(self):
            raise OSError("No space left on device")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr("seqdl.metrics.pq.ParquetWriter", Broken)
    logger.log(2, loss=0.8)
    with pytest.raises(OSError, match="No space"):
        logger.log(3, loss=0.7)
    assert pq.read_table(path).column("step").to_pylist() == [0, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["m.parquet"]


def test_resume_keeps_rows_up_to_the_resume_step(tmp_path):
    path = tmp_path / "m.parquet"
    with MetricLogger(path, metadata={"seqdl.version": "0.1.0"}) as logger:
        for step in range(10):
            logger.log(step, loss=float(step))
        logger.log(10, val_loss=3.0)
    last_seconds = pq.read_table(path).column("seconds").to_pylist()[5]
    with MetricLogger(path, resume=True, resume_step=5) as logger:
        assert pq.read_table(path).num_rows == 6  # rows after the resume step are gone at once
        logger.log(6, loss=60.0, accuracy=0.5)
    table = pq.read_table(path)
    data = table.to_pydict()
    assert data["step"] == [0, 1, 2, 3, 4, 5, 6] and data["loss"][-1] == 60.0
    assert data["val_loss"] == [None] * 7 and data["accuracy"] == [None] * 6 + [0.5]
    assert data["seconds"][-1] >= last_seconds  # the clock continues
    assert table.schema.metadata[b"seqdl.version"] == b"0.1.0"
    with MetricLogger(path, resume=True) as logger:
        logger.log(7, loss=70.0)
    assert pq.read_table(path).column("step").to_pylist() == list(range(8))
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(SeqdlError, match="junk.parquet: not a readable metrics Parquet"):
        MetricLogger(tmp_path / "junk.parquet", resume=True)


def test_norm_helpers():
    layer = nn.Linear(3, 2)
    layer(Tensor(np.ones((4, 3)))).sum().backward()
    norms = parameter_norms(layer)
    assert set(norms) == {"norm/weight", "norm/bias"}
    assert norms["norm/weight"] == pytest.approx(float(np.linalg.norm(layer.weight.data)))
    expected = float(np.sqrt((layer.weight.grad**2).sum() + (layer.bias.grad**2).sum()))
    assert gradient_norm(layer) == pytest.approx(expected, rel=1e-6)
    assert gradient_norm([layer.weight]) == pytest.approx(float(np.linalg.norm(layer.weight.grad)), rel=1e-6)
    layer.zero_grad()
    assert gradient_norm(layer) == 0.0


def test_plot_writes_a_png_and_rejects_bad_input(tmp_path):
    path = tmp_path / "m.parquet"
    with MetricLogger(path) as logger:
        for step in range(20):
            logger.log(step, loss=np.exp(-step / 5), accuracy=step / 20, **({"val_loss": 1.0} if step % 5 else {}))
    out = plot_metrics(path, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_metrics(path, tmp_path / "s.png", columns=["loss"], x="seconds").stat().st_size > 1000
    with pytest.raises(SeqdlError, match="no column nope"):
        plot_metrics(path, tmp_path / "x.png", columns=["nope"])
    with pytest.raises(SeqdlError, match="does not exist"):
        plot_metrics(path, tmp_path / "missing" / "x.png")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(SeqdlError, match="not a readable metrics Parquet"):
        plot_metrics(tmp_path / "junk.parquet", tmp_path / "y.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "junk.parquet", "m.parquet", "s.png"]


def test_validation_metrics_share_their_training_metrics_panel():
    text = ["train_loss", "lr", "grad_norm", "chars_per_second", "val_loss"]
    assert metric_panels(text) == [["train_loss", "val_loss"], ["lr"], ["grad_norm"], ["chars_per_second"]]
    dna = ["coding_loss", "lm_bits_per_base", "lr", "val_coding_loss", "val_bits_per_base"]
    assert metric_panels(dna) == [["coding_loss", "val_coding_loss"], ["lm_bits_per_base", "val_bits_per_base"],
                                  ["lr"]]
    assert metric_panels(["a_loss", "b_loss", "val_loss"]) == [["a_loss"], ["b_loss"], ["val_loss"]]  # ambiguous
