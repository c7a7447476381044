"""``seqdl scan``: stream FASTA files through the DNA models to Parquet windows, gene calls and tracks.

Follow one record: :class:`~pipelines.fasta.FastaReader` yields chunks (whole
model tiles, with context) -> :func:`~pipelines.dna_model.score` gives per-base
codon-position probabilities and LM bits on both strands -> :class:`RecordScan`
buffers them, calls genes (:mod:`dna_genes`) once no longer gene can still end
in the stretch, and cuts windows once every gene that could overlap them is
known -> :class:`Outputs` appends window rows to the Parquet file (one row group
per batch) and genes to BED/GFF3, bins to bedGraph.
While the main thread does that for one chunk, the models already score the next
(:func:`_scan_file`).

A window with fewer known bases (A, C, G, T) than the shortest gene the caller
calls (``CallOptions.min_length``, 90 bp) gets null ``coding_probability`` and
``bits_per_base``: the models' numbers on a 10 bp record are not evidence of
anything, however confident they look.

Memory is bounded by the chunk size plus a margin of ``MARGIN`` bases (the
longest gene the caller considers), whatever the record's length. Every output
goes to a temp file renamed at the end, so a failure leaves nothing behind.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from seqdl.errors import SeqdlError
from seqdl.io import atomic_open, atomic_path, check_output_path, parquet_metadata, progress_bar, provenance

from .dna_adapt import AdaptOptions, adapted_for
from .dna_genes import CallOptions, GeneCall, GeneModel, call_genes, prefix_sums
from .dna_model import THREADS, DnaModel, TileScores, load_dna_model, score
from .fasta import C, G, N, Chunk, FastaReader
from .scan_plot import TABLE

MARGIN = 30_000  # default longest gene (bp) the streaming caller guarantees to see whole
STRANDS = "+-"
SCHEMA = pa.schema([
    ("source", pa.string()), ("record", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
    ("strand", pa.string()), ("gc", pa.float32()), ("gc_skew", pa.float32()), ("fraction_n", pa.float32()),
    ("coding_probability", pa.float32()), ("called_gene_bases", pa.int32()), ("bits_per_base", pa.float32()),
])


@dataclass(frozen=True)
class ScanOptions:
    window: int = 1000
    stride: int = 500
    chunk_tiles: int = 250  # model tiles per FASTA chunk (x tile size = bases read at a time)
    margin: int = MARGIN
    calls: CallOptions = field(default_factory=CallOptions)
    adapt: AdaptOptions | None = None  # fine-tune on each input first (or, with auto, where it is unlike the
    # training genome: see dna_adapt); streamed, bounded memory
    threads: int = THREADS  # the coding and language models run side by side; a batch worker gets its own share

    def __post_init__(self) -> None:
        if self.window < 1:
            raise SeqdlError(f"--window must be positive, not {self.window}")
        if self.stride < 1:
            raise SeqdlError(f"--stride must be positive, not {self.stride}")
        if self.threads < 1:
            raise SeqdlError(f"--threads must be positive, not {self.threads}")
        if self.chunk_tiles < 1 or self.margin < 1:
            raise SeqdlError(f"--chunk-tiles and margin must be positive, not {self.chunk_tiles}, {self.margin}")


class RecordScan:
    """Per-base results of one record from ``origin`` on, turned into genes and windows as they become final."""

    def __init__(self, source: str, record: str, options: ScanOptions, genes: GeneModel | None = None) -> None:
        self.source, self.record, self.options = source, record, options
        self.genes = genes  # the model's own decoder parameters (None: the shipped model's)
        self.origin = 0  # record coordinate of buffer index 0
        self.codes = np.empty(0, np.uint8)
        self.coding = np.empty((2, 3, 0), np.float32)
        self.bits = np.empty((2, 0), np.float32)
        self.called = np.zeros((2, 0), bool)
        self.genes_until = 0  # genes ending at or before this are final
        self.recent: list[GeneCall] = []  # final genes that may still overlap new candidates (record coordinates)
        self.next_window = 0  # start of the next window to emit
        self.done = False  # the record's last window has been emitted

    @property
    def end(self) -> int:
        return self.origin + len(self.codes)

    def add(self, codes: np.ndarray, coding: np.ndarray, bits: np.ndarray, last: bool
            ) -> tuple[list[tuple[GeneCall, float]], list[tuple[int, int]], np.ndarray]:
        """Append a chunk's core; return the genes that became final (with their mean coding probability), the
        windows that did, and the windows' values."""
        self.codes = np.concatenate([self.codes, codes])
        self.coding = np.concatenate([self.coding, coding], axis=2)
        self.bits = np.concatenate([self.bits, bits], axis=1)
        self.called = np.concatenate([self.called, np.zeros((2, len(codes)), bool)], axis=1)
        genes = self._final_genes(self.end if last else self.end - self.options.margin)
        means = [self.mean_coding(gene) for gene in genes]  # now: trimming may drop the genes' bases
        windows, values = self._final_windows(last)
        self._trim()
        return list(zip(genes, means)), windows, values

    def mean_coding(self, gene: GeneCall) -> float:
        """Mean coding probability (any codon position) over a gene's bases, on its strand."""
        s, e = gene.start - self.origin, gene.end - self.origin
        return float(self.coding[gene.strand, :, s:e].sum(axis=0).mean())

    def _final_genes(self, until: int) -> list[GeneCall]:
        if until <= self.genes_until:
            return []
        keep = [GeneCall(g.start - self.origin, g.end - self.origin, g.strand, g.score, g.start_codon)
                for g in self.recent if g.end > self.origin]
        calls = call_genes(self.codes, self.coding, self.options.calls, keep, self.genes)
        new = [GeneCall(c.start + self.origin, c.end + self.origin, c.strand, c.score, c.start_codon)
               for c in calls if self.genes_until < c.end + self.origin <= until]
        for gene in new:
            self.called[gene.strand, gene.start - self.origin:gene.end - self.origin] = True
        self.genes_until = until
        self.recent = [g for g in self.recent + new if g.end > until - self.options.margin]
        return new

    def _final_windows(self, last: bool) -> tuple[list[tuple[int, int]], np.ndarray]:
        """Windows whose every base, and every gene that can overlap them, is known."""
        o = self.options
        limit = self.end if last else self.genes_until - o.margin
        spans = []
        start = self.next_window
        while not self.done:
            end = start + o.window
            if end > limit and not (last and start < self.end):
                break
            spans.append((start, min(end, self.end)))
            if end >= self.end and last:
                self.done = True
            start += o.stride
        self.next_window = start
        return spans, self._window_values(spans)

    def _window_values(self, spans: list[tuple[int, int]]) -> np.ndarray:
        """(n, 2, 6) per window and strand: gc, gc skew, fraction N, coding probability, called bases, bits/base."""
        if not spans:
            return np.empty((0, 2, 6))
        codes = self.codes
        idx = np.array(spans) - self.origin
        per_base = [codes == G, codes == C, codes == N, codes < N, self.coding[0].sum(axis=0),
                    self.coding[1].sum(axis=0), self.called[0], self.called[1], np.nan_to_num(self.bits[0]),
                    np.nan_to_num(self.bits[1])]
        sums = [np.diff(prefix_sums(values, idx.ravel()).reshape(-1, 2), axis=1)[:, 0] for values in per_base]
        g, c, n, acgt, p_plus, p_minus, k_plus, k_minus, b_plus, b_minus = sums
        length = idx[:, 1] - idx[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            gc = (g + c) / acgt
            skew = (g - c) / (g + c)
            out = np.empty((len(spans), 2, 6))
            out[:, 0] = np.stack([gc, skew, n / length, p_plus / length, k_plus, b_plus / acgt], axis=1)
            out[:, 1] = np.stack([gc, -skew, n / length, p_minus / length, k_minus, b_minus / acgt], axis=1)
        too_short = acgt < self.options.calls.min_length
        out[too_short, :, 3] = np.nan  # null in Parquet: no score rather than a confident one from a few bases
        out[too_short, :, 5] = np.nan
        return out

    def _trim(self) -> None:
        """Forget bases no future window or gene can need."""
        keep_from = min(self.next_window, self.genes_until - self.options.margin)
        cut = max(keep_from - self.origin, 0)
        if cut:
            self.codes, self.coding = self.codes[cut:].copy(), self.coding[:, :, cut:].copy()
            self.bits, self.called = self.bits[:, cut:].copy(), self.called[:, cut:].copy()
            self.origin += cut


class Outputs:
    """The files a scan writes, each to a temp name that becomes final only if the whole scan succeeds."""

    ROWS_PER_GROUP = 65_536

    def __init__(self, stack: ExitStack, out: Path, metadata: dict[str, str], bed: Path | None, gff: Path | None,
                 bedgraph: Path | None, bin_size: int) -> None:
        temp = stack.enter_context(atomic_path(out))
        self.parquet = stack.enter_context(pq.ParquetWriter(temp, SCHEMA.with_metadata(metadata)))
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.bed = stack.enter_context(atomic_open(bed)) if bed else None
        self.gff = stack.enter_context(atomic_open(gff)) if gff else None
        if self.gff:
            self.gff.write("##gff-version 3\n")
        self.gff_lines: list[str] = []  # the current record's features, written after its ##sequence-region line
        self.tracks: dict[str, TextIO] = {}
        if bedgraph:
            for name in ("coding_plus", "coding_minus", "bits_plus", "bits_minus"):
                path = bedgraph_path(bedgraph, name)
                handle = stack.enter_context(atomic_open(path))
                handle.write(f'track type=bedGraph name="{name}" description="seqdl scan {name} per {bin_size} bp"\n')
                self.tracks[name] = handle
        self.bin_size = bin_size
        self.n_genes = 0

    def windows(self, source: str, record: str, spans: list[tuple[int, int]], values: np.ndarray) -> None:
        if not spans:
            return
        n = len(spans)
        starts = np.repeat(np.array(spans)[:, 0], 2)
        ends = np.repeat(np.array(spans)[:, 1], 2)
        flat = values.reshape(2 * n, 6)
        columns = [pa.array([source] * (2 * n)), pa.array([record] * (2 * n)), pa.array(starts, pa.int64()),
                   pa.array(ends, pa.int64()), pa.array(list(STRANDS) * n)]
        for index in range(6):
            kind = pa.int32() if index == 4 else pa.float32()
            column = flat[:, index]
            column = column.astype(np.int32) if index == 4 else column.astype(np.float32)
            columns.append(pa.array(column, kind, from_pandas=True))
        self.pending.append(pa.RecordBatch.from_arrays(columns, schema=SCHEMA))
        self.pending_rows += 2 * n
        if self.pending_rows >= self.ROWS_PER_GROUP:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.parquet.write_table(pa.Table.from_batches(self.pending, SCHEMA), row_group_size=self.ROWS_PER_GROUP)
            self.pending, self.pending_rows = [], 0

    def finish(self) -> None:
        """Write out and close every file while still under their temp names: a failure here (a full disk) leaves
        nothing behind, where one in the renames' cleanup would already have committed some outputs."""
        self.flush()
        self.parquet.close()
        for handle in [self.bed, self.gff, *self.tracks.values()]:
            if handle is not None:
                handle.close()

    def genes(self, record: str, genes: list[tuple[GeneCall, float]]) -> None:
        """BED6 and GFF3 lines for genes, each with its mean coding probability."""
        for gene, mean in genes:
            self.n_genes += 1
            name = f"{record}_gene{self.n_genes}"
            strand = STRANDS[gene.strand]
            if self.bed:
                self.bed.write(f"{record}\t{gene.start}\t{gene.end}\t{name}\t{int(round(1000 * mean))}\t{strand}\n")
            if self.gff:
                self.gff_lines.append(f"{record}\tseqdl\tCDS\t{gene.start + 1}\t{gene.end}\t{mean:.3f}\t{strand}\t0\t"
                                      f"ID={name};start_codon={gene.start_codon}\n")

    def end_record(self, record: str, length: int) -> None:
        """A record's GFF3 ``##sequence-region`` line (its length is known only now), then its features."""
        if self.gff:
            self.gff.write(f"##sequence-region {record} 1 {length}\n")
            self.gff.writelines(self.gff_lines)
            self.gff_lines = []

    def track_bins(self, record: str, starts: np.ndarray, ends: np.ndarray, values: dict[str, np.ndarray]) -> None:
        for name, handle in self.tracks.items():
            column = values[name]
            ok = ~np.isnan(column)
            handle.writelines(f"{record}\t{s}\t{e}\t{v:.4f}\n" for s, e, v in zip(starts[ok], ends[ok], column[ok]))


def bedgraph_path(base: Path, name: str) -> Path:
    """``coding.bedgraph`` + ``coding_plus`` -> ``coding.coding_plus.bedgraph``."""
    stem = base.name[:-len(".bedgraph")] if base.name.endswith(".bedgraph") else base.name
    return base.with_name(f"{stem}.{name}.bedgraph")


def default_out(first: Path) -> Path:
    name = first.name
    for suffix in (".gz", ".bgz", ".fasta", ".fna", ".fa", ".fas", ".ffn", ".seq"):
        name = name[:-len(suffix)] if name.endswith(suffix) else name
    return Path(name + ".scan.parquet")


@dataclass
class FileReport:
    file: str
    records: int = 0
    bases: int = 0
    genes: int = 0
    windows: int = 0
    seconds: float = 0.0
    adapted: bool = False  # the model was fine-tuned on this file first (--adapt, or chosen automatically)

    def record(self) -> dict[str, Any]:
        return asdict(self)


def scan_params(options: ScanOptions) -> dict[str, Any]:
    """The options that shape a scan's output, as recorded in its metadata (threads only change the speed)."""
    params = {"window": options.window, "stride": options.stride, "calls": asdict(options.calls)}
    if options.adapt:
        params["adapt"] = asdict(options.adapt)
    return params


def scan_files(paths: list[Path], model_path: Path, out: Path, options: ScanOptions, *, bed: Path | None = None,
               gff: Path | None = None, bedgraph: Path | None = None, quiet: bool = False, command: str = "scan",
               params: dict[str, Any] | None = None, model: DnaModel | None = None,
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Scan ``paths`` in order into the outputs; returns one report per file and a summary.

    ``model``: the model at ``model_path``, already loaded (batch workers load it once).
    """
    for path in [out, bed, gff] + ([bedgraph_path(bedgraph, "coding_plus")] if bedgraph else []):
        if path is not None:
            check_output_path(path)
    if model is None:
        model, _ = load_dna_model(model_path)
    params = {**(params or {}), **scan_params(options)}
    metadata = {**provenance(command, params, paths, model_path), "seqdl.table": TABLE}
    reports = []
    started = time.monotonic()
    with ExitStack() as stack:
        progress = stack.enter_context(progress_bar(quiet))
        # Each input's model first (adapted or not), so the file's metadata can say which inputs were adapted to.
        tuned = {path: adapted_for(model, path, options.adapt, quiet, progress, options.threads) for path in paths}
        adapted = [str(path) for path in paths if tuned[path] is not model]
        metadata["seqdl.adapted_inputs"] = json.dumps(adapted)
        outputs = Outputs(stack, out, metadata, bed, gff, bedgraph, options.stride)
        # bytes of the files as stored (compressed, for gzip): the one total known before reading
        task = progress.add_task("scanning", total=sum(map(_stored_size, paths)), status="", unit="bytes")
        for path in paths:
            report = _scan_file(path, tuned[path], options, outputs, lambda n: progress.advance(task, n))
            report.adapted = str(path) in adapted
            reports.append(report)
        outputs.finish()
    summary = {"files": len(paths), "bases": sum(r.bases for r in reports), "genes": sum(r.genes for r in reports),
               "windows": sum(r.windows for r in reports), "seconds": time.monotonic() - started, "out": str(out)}
    return [r.record() for r in reports], summary


def _stored_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # reading it will fail with a message naming the file
        return 0


def _scan_file(path: Path, model: DnaModel, options: ScanOptions, outputs: Outputs, advance: Any) -> FileReport:
    """Scan one file into ``outputs``; ``advance(n)`` is told of every ``n`` bytes of the file read.

    The models score each chunk on a thread of their own while this thread reads the next chunk and turns
    the previous one's scores into genes, windows and tracks: the cores do not wait for that serial work.
    """
    started = time.monotonic()
    report = FileReport(str(path))
    tile, context = model.config.tile, model.config.context
    reader = FastaReader(path, chunk_size=tile * options.chunk_tiles, overlap=context)
    scan: RecordScan | None = None
    bytes_done = 0

    def emit(chunk: Chunk, scores: TileScores, bytes_read: int) -> None:
        nonlocal scan, bytes_done
        if scan is None or scan.record != chunk.record:
            scan = RecordScan(str(path), chunk.record, options, model.genes)
            report.records += 1
        genes, spans, values = scan.add(chunk.core, scores.coding, scores.bits, chunk.last)
        outputs.genes(chunk.record, genes)
        outputs.windows(str(path), chunk.record, spans, values)
        if outputs.tracks:
            _write_bins(outputs, chunk.record, chunk.core_start, scores, options.stride, chunk.core_end)
        if chunk.last:
            outputs.end_record(chunk.record, chunk.core_end)
        report.genes += len(genes)
        report.windows += 2 * len(spans)
        report.bases += chunk.core_end - chunk.core_start
        advance(bytes_read - bytes_done)
        bytes_done = bytes_read

    # One BLAS thread for the models' tasks, set here: a limit set on the scoring thread does not hold there if this
    # thread set a count of its own before (OpenBLAS 0.3.31 behind threadpoolctl, measured: the scan under a
    # two-thread limit ran its tasks on two BLAS threads each, at twice the CPU time).
    scorer = ThreadPoolExecutor(1)
    limit = threadpool_limits(limits=1, user_api="blas")
    try:
        previous = None
        for chunk in reader:
            scoring = scorer.submit(score, model, chunk.codes, chunk.start, chunk.core_start, chunk.core_end, None,
                                    threads=options.threads)
            if previous is not None:
                emit(previous[0], previous[1].result(), previous[2])
            previous = (chunk, scoring, reader.bytes_read)
        if previous is not None:
            emit(previous[0], previous[1].result(), previous[2])
    finally:
        scorer.shutdown(cancel_futures=True)
        limit.restore_original_limits()
    advance(_stored_size(path) - bytes_done)
    report.seconds = time.monotonic() - started
    return report


def _write_bins(outputs: Outputs, record: str, start: int, scores: Any, size: int, end: int) -> None:
    """Means over fixed ``size`` bins of the record; a chunk's core starts on a bin edge when the chunk size is a
    multiple of ``size`` (bins that straddle chunks are written in two pieces, still non-overlapping)."""
    edges = np.unique(np.concatenate([[start], np.arange(-(-start // size) * size, end, size), [end]]))
    lo, hi = edges[:-1] - start, edges[1:] - start
    width = hi - lo

    def bin_sums(per_base: np.ndarray) -> np.ndarray:
        at = prefix_sums(per_base, np.concatenate([lo, hi]))
        return at[len(lo):] - at[:len(lo)]

    prob = scores.coding.sum(axis=1)  # (2, L)
    bits, valid = np.nan_to_num(scores.bits), ~np.isnan(scores.bits)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = {"coding_plus": bin_sums(prob[0]) / width, "coding_minus": bin_sums(prob[1]) / width,
                  "bits_plus": bin_sums(bits[0]) / bin_sums(valid[0]),
                  "bits_minus": bin_sums(bits[1]) / bin_sums(valid[1])}
    outputs.track_bins(record, edges[:-1], edges[1:], values)


def read_scan_metadata(path: Path) -> dict[str, Any]:
    """The provenance a scan Parquet file carries (JSON values decoded)."""
    meta = parquet_metadata(pq.read_schema(path).metadata)
    return {k: json.loads(v) if k in ("seqdl.params", "seqdl.inputs", "seqdl.adapted_inputs") else v
            for k, v in meta.items()}
