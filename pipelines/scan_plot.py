"""``seqdl plot X.scan.parquet``: a scan's genome tracks as one PNG, record by record.

Per record, four tracks share the genome axis: coding probability (+ strand up,
- strand down), the fraction of bases in called genes (same layout), GC skew
(bars, with its cumulative sum, whose minimum and maximum mark a bacterial
origin and terminus of replication) and bits/base per strand. A 5 Mbp genome has
~10,000 windows per strand, more than a figure has pixels, so windows are averaged
into at most ``BINS`` bins per record (null scores, from short or N windows, are
left out of the means). The largest ``MAX_RECORDS`` records are drawn; the rest
are named in the title.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from seqdl.errors import SeqdlError
from seqdl.io import atomic_path, check_output_path

TABLE = "scan"  # ``seqdl.table`` in a scan's Parquet metadata: what tells ``seqdl plot`` to draw these tracks
BINS = 1200  # per record: about one per pixel column of the 14-inch, 100 dpi figure
MAX_RECORDS = 6
COLUMNS = ["record", "start", "end", "strand", "gc_skew", "coding_probability", "called_gene_bases", "bits_per_base"]
PLUS, MINUS = "#1f77b4", "#d62728"


def read_scan(path: str | os.PathLike) -> pa.Table:
    try:
        return pq.ParquetFile(path).read(columns=COLUMNS)  # not pq.read_table: importing pyarrow.dataset costs ~1 s
    except (OSError, pa.ArrowException) as exc:
        raise SeqdlError(f"not a readable scan Parquet file ({exc})", str(path)) from None


def plot_scan(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Draw the tracks of the scan Parquet file ``path`` into the PNG ``out`` (written atomically)."""
    from matplotlib.figure import Figure

    path, out = Path(path), check_output_path(out)
    table = read_scan(path)
    if table.num_rows == 0:
        raise SeqdlError("has no windows to plot", str(path))
    lengths = _record_lengths(table)
    drawn = sorted(lengths, key=lambda name: -lengths[name])[:MAX_RECORDS]
    figure = Figure(figsize=(14, 0.6 + 5.2 * len(drawn)), layout="constrained")
    left_out = len(lengths) - len(drawn)
    figure.suptitle(f"{path.name}: {len(lengths)} record(s), {sum(lengths.values()):,} bp"
                    + (f" ({left_out} smaller record(s) not drawn)" if left_out else ""), fontsize=11)
    panels = figure.subfigures(len(drawn), 1, squeeze=False)[:, 0]
    for panel, record in zip(panels, drawn):
        rows = table.filter(pc.equal(table["record"], record))
        _draw_record(panel, record, lengths[record], rows)
    with atomic_path(out) as temp:
        figure.savefig(temp, format="png", dpi=100)
    return out


def _record_lengths(table: pa.Table) -> dict[str, int]:
    """Each record's length (its last window's end), in the table's order (not Arrow's group_by: its engine takes
    a second to import)."""
    records = table["record"].combine_chunks().dictionary_encode()  # names once, a small integer per row
    ends = np.zeros(len(records.dictionary), np.int64)
    np.maximum.at(ends, records.indices.to_numpy(), table["end"].to_numpy())
    return dict(zip(records.dictionary.to_pylist(), ends.tolist()))


def _draw_record(panel, record: str, length: int, rows: pa.Table) -> None:  # noqa: ANN001 (a matplotlib SubFigure)
    scale, unit = (1e6, "Mbp") if length >= 1e6 else (1e3, "kbp")
    starts = np.unique(rows["start"].to_numpy())
    stride = int(np.median(np.diff(starts))) if len(starts) > 1 else length
    size = max(1, -(-length // BINS), stride)  # no narrower than the windows' spacing, or bins fall between them
    edges = np.arange(0, length + size, size)
    centres = (edges[:-1] + np.minimum(edges[1:], length)) / 2 / scale
    plus, minus = (_binned(rows, strand, size, len(edges) - 1) for strand in "+-")
    axes = panel.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [1.2, 1, 1, 1]})
    panel.suptitle(f"{record} ({length:,} bp)", fontsize=10)

    coding, genes, skew, bits = axes
    _mirrored(coding, centres, plus["coding_probability"], minus["coding_probability"], "coding probability")
    _mirrored(genes, centres, plus["called_fraction"], minus["called_fraction"], "in called genes")
    coding.legend(loc="upper right", fontsize=7, ncols=2)
    gc_skew = np.nan_to_num(plus["gc_skew"])
    for sign, color in ((gc_skew >= 0, "#2ca02c"), (gc_skew <= 0, "#9467bd")):  # one artist each, not a bar per bin
        skew.fill_between(centres, 0, np.where(sign, gc_skew, 0), color=color, lw=0, step="mid")
    skew.axhline(0, color="grey", lw=0.5)
    skew.set_ylabel("GC skew\n(G-C)/(G+C)", fontsize=8)
    cumulative = skew.twinx()
    cumulative.plot(centres, np.nancumsum(plus["gc_skew"]), color="black", lw=1)
    cumulative.set_ylabel("cumulative", fontsize=8)
    bits.plot(centres, plus["bits_per_base"], color=PLUS, lw=0.7, label="+ strand")
    bits.plot(centres, minus["bits_per_base"], color=MINUS, lw=0.7, alpha=0.7, label="- strand")
    bits.set_ylabel("bits/base\n(language model)", fontsize=8)
    bits.legend(loc="upper right", fontsize=7, ncols=2)
    bits.set_xlabel(f"position ({unit})")
    bits.set_xlim(0, length / scale)
    for ax in axes:
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25, lw=0.5)


def _mirrored(ax, x: np.ndarray, plus: np.ndarray, minus: np.ndarray, label: str) -> None:  # noqa: ANN001
    """``plus`` above the axis, ``minus`` below it (both in 0..1)."""
    ax.fill_between(x, 0, np.nan_to_num(plus), color=PLUS, lw=0, step="mid", label="+ strand")
    ax.fill_between(x, 0, -np.nan_to_num(minus), color=MINUS, lw=0, step="mid", label="- strand")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylim(-1.02, 1.02)
    ax.set_yticks([-1, -0.5, 0, 0.5, 1], ["1", "0.5", "0", "0.5", "1"])
    ax.set_ylabel(f"{label}\n- strand | + strand", fontsize=8)


def _binned(rows: pa.Table, strand: str, size: int, n_bins: int) -> dict[str, np.ndarray]:
    """Per bin of ``size`` bases, the mean of each track over the strand's windows whose centre falls in it."""
    rows = rows.filter(pc.equal(rows["strand"], strand))
    start, end = (rows[name].to_numpy() for name in ("start", "end"))
    index = np.minimum((start + end) // 2 // size, n_bins - 1)
    tracks = {name: _floats(rows[name]) for name in ("gc_skew", "coding_probability", "bits_per_base")}
    tracks["called_fraction"] = _floats(rows["called_gene_bases"]) / np.maximum(end - start, 1)
    means = {}
    for name, values in tracks.items():
        known = ~np.isnan(values)
        total = np.bincount(index[known], weights=values[known], minlength=n_bins)
        count = np.bincount(index[known], minlength=n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[name] = total / count  # NaN where a bin has no scored window: drawn as a gap
    return means


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
