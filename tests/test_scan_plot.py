"""``seqdl plot`` of a scan: binned genome tracks per record, written as a PNG."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from pipelines.fasta import decode
from pipelines.scan import ScanOptions, scan_files
from pipelines.scan_plot import MAX_RECORDS, _binned, plot_scan
from seqdl.errors import SeqdlError


def test_bins_average_the_windows_whose_centre_they_hold_and_skip_nulls():
    rows = pa.table({"start": [0, 100, 200, 300, 0], "end": [100, 200, 300, 350, 100],
                     "strand": ["+", "+", "+", "+", "-"], "gc_skew": [0.1, 0.3, None, -0.2, -0.1],
                     "coding_probability": [1.0, 0.0, 0.5, None, 0.25], "called_gene_bases": [100, 50, 0, 25, 10],
                     "bits_per_base": [2.0, 1.0, 1.5, None, 1.9]})
    plus = _binned(rows, "+", 200, 2)  # bin 0: windows centred at 50 and 150; bin 1: at 250 and 325
    np.testing.assert_allclose(plus["gc_skew"], [0.2, -0.2])
    np.testing.assert_allclose(plus["coding_probability"], [0.5, 0.5])
    np.testing.assert_allclose(plus["called_fraction"], [0.75, 0.25])
    minus = _binned(rows, "-", 200, 2)
    assert minus["coding_probability"][0] == 0.25 and np.isnan(minus["coding_probability"][1])  # no window: a gap


def test_plot_draws_every_record_up_to_the_limit(tiny_dna_model, tmp_path):
    rng = np.random.default_rng(0)
    fasta = tmp_path / "many.fa"
    lengths = [3000 - 200 * i for i in range(MAX_RECORDS + 2)]
    fasta.write_text("".join(f">r{i}\n{decode(rng.integers(0, 4, n).astype(np.uint8))}\n"
                             for i, n in enumerate(lengths)))
    scan = tmp_path / "many.scan.parquet"
    scan_files([fasta], tiny_dna_model, scan, ScanOptions(window=200, stride=100), quiet=True)
    out = plot_scan(scan, tmp_path / "many.png")
    with Image.open(out) as image:
        width, height = image.size
    assert width == 1400 and height > 500 * MAX_RECORDS  # one block of four tracks per drawn record

    with pytest.raises(SeqdlError, match="not a readable scan Parquet"):
        plot_scan(fasta, tmp_path / "x.png")
    with pytest.raises(SeqdlError, match="does not exist"):
        plot_scan(scan, tmp_path / "missing" / "x.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.fa", "many.png", "many.scan.parquet"]


def test_seqdl_plot_picks_the_figure_from_the_files_metadata(tiny_dna_model, tmp_path, capsys):
    from seqdl.cli import main
    from seqdl.metrics import MetricLogger

    fasta = tmp_path / "g.fa"
    fasta.write_text(">g\n" + decode(np.random.default_rng(1).integers(0, 4, 4000).astype(np.uint8)) + "\n")
    scan_files([fasta], tiny_dna_model, tmp_path / "g.scan.parquet", ScanOptions(), quiet=True)
    with MetricLogger(tmp_path / "m.metrics.parquet") as logger:
        for step in range(4):
            logger.log(step, train_loss=1.0 / (step + 1), **({"val_loss": 0.8} if step % 2 else {}))
    for name, kind in (("g.scan.parquet", "scan"), ("m.metrics.parquet", "metrics")):
        with pytest.raises(SystemExit) as done:
            main(["plot", str(tmp_path / name), "-o", str(tmp_path / f"{kind}.png"), "--json"])
        assert done.value.code == 0
        assert json.loads(capsys.readouterr().out) == {kind: str(tmp_path / name), "out": str(tmp_path / f"{kind}.png")}
    with Image.open(tmp_path / "scan.png") as scan, Image.open(tmp_path / "metrics.png") as metrics:
        assert scan.size[0] == 1400 and metrics.size[0] < 1400  # tracks vs a row of training-curve panels
    with pytest.raises(SystemExit) as done:
        main(["plot", str(tmp_path / "g.scan.parquet"), "-o", str(tmp_path / "c.png"), "--column", "gc"])
    assert done.value.code == 2 and "--column is for metrics files" in capsys.readouterr().err
