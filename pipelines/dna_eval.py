"""``seqdl eval dna``: a DNA model against an annotation.

Measures, on each record (or only on ``--region`` stretches, e.g. a held-out region):

- base-level, strand-specific coding precision / recall / F1: a base on a strand
  is "coding" if a CDS covers it on that strand; predicted coding = inside a gene
  call (``genes_*``) and, for reference, the model's raw per-base probability
  > 0.5 (``raw_*``);
- gene-level 3'-end sensitivity / precision: a call is right if its stop codon's
  last base and strand equal an annotated CDS's (genes are counted where their
  3' end lies in the evaluated stretch);
- exact gene sensitivity / precision: both ends equal an annotated CDS's (the gene
  model a protein is read from), and the 5'-end accuracy of the calls whose 3' end
  is right (how often the start codon is the annotated one);
- language-model bits/base, both strands.

Gene calling sees ``MARGIN`` bases beyond each stretch, as a scan would.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from seqdl.io import progress_bar

from .annotation import read_annotation
from .dna_adapt import AdaptOptions, adapted_for
from .dna_data import Region, parse_region
from .dna_genes import CallOptions, call_genes, call_mask
from .dna_model import THREADS, DnaModel, TileScores, load_dna_model, score
from .fasta import read_records
from .scan import MARGIN

SCORE_PIECE = 200_000  # bases scored between two updates of the progress bar


def overlap_counts(predicted: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """True positives, predicted and true counts of two boolean masks."""
    return int((predicted & truth).sum()), int(predicted.sum()), int(truth.sum())


def precision_recall_f1(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else float("nan")
    recall = tp / n_true if n_true else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return precision, recall, f1


def _three_prime_counts(predicted: set[tuple[int, int, int]], annotated: set[tuple[int, int, int]]
                        ) -> tuple[int, int, int]:
    """Hits, calls and annotated genes counted by (strand, 3' end) only."""
    calls, truth = {(s, t) for s, _, t in predicted}, {(s, t) for s, _, t in annotated}
    return len(calls & truth), len(calls), len(truth)


def _scores(model: DnaModel, codes: np.ndarray, lo: int, hi: int, advance: Callable[[int], None],
            threads: int) -> TileScores:
    """:func:`score` of ``codes[lo:hi]`` (``lo`` on a tile edge) in pieces of about ``SCORE_PIECE`` bp (whole
    tiles: the same results as in one piece), for the bar."""
    step = max(SCORE_PIECE // model.config.tile, 1) * model.config.tile
    parts = []
    for start in range(lo, hi, step):
        end = min(start + step, hi)
        parts.append(score(model, codes, 0, start, end, len(codes), threads=threads))
        advance(end - start)
    return TileScores(np.concatenate([p.coding for p in parts], axis=2),
                      np.concatenate([p.bits for p in parts], axis=1))


def evaluate(model_path: Path, fasta: Path, annotation: Path, regions: list[str] | None = None,
             options: CallOptions = CallOptions(), adapt_options: AdaptOptions | None = None,
             quiet: bool = True, threads: int = THREADS) -> dict[str, Any]:
    """The metrics above; with ``adapt_options`` the model is first fine-tuned on the FASTA (never the annotation),
    or with ``auto`` set only where :func:`dna_adapt.needs_adapt` says so; ``threads``: the cores to use."""
    started = time.monotonic()
    model, _ = load_dna_model(model_path)
    records = read_records(fasta)
    lengths = {name: len(seq) for name, seq in records.items()}
    notes = read_annotation(annotation)
    labels = notes.labels(lengths)
    given = model
    model = adapted_for(model, Path(fasta), adapt_options, quiet, threads=threads)
    stretches = ([parse_region(text, lengths) for text in regions] if regions
                 else [Region(name, 0, length) for name, length in lengths.items()])
    counts = np.zeros((4, 3), np.int64)  # rows: genes, raw, 3' ends, both ends; columns: tp, predicted, true
    bits_sum, bits_n = 0.0, 0
    tile = model.config.tile
    spans = [(max(r.start - MARGIN, 0) // tile * tile, min(r.end + MARGIN, lengths[r.record])) for r in stretches]
    with progress_bar(quiet, "bp") as progress:
        task = progress.add_task("scoring", total=sum(hi - lo for lo, hi in spans), status="")
        for region, (lo, hi) in zip(stretches, spans):
            codes = records[region.record]
            scores = _scores(model, codes, lo, hi, lambda n: progress.advance(task, n), threads)
            length = len(codes)
            calls = call_genes(codes[lo:hi], scores.coding, options, genes=model.genes)
            a, b = region.start - lo, region.end - lo
            truth = labels[region.record][:, region.start:region.end] >= 0
            counts[0] += overlap_counts(call_mask(calls, hi - lo)[:, a:b], truth)
            counts[1] += overlap_counts(scores.coding.sum(axis=1)[:, a:b] > 0.5, truth)
            predicted = {(c.strand, c.five_prime + lo, c.three_prime + lo) for c in calls
                         if region.start <= c.three_prime + lo < region.end}
            annotated = {(s, f, t) for s, f, t in notes.gene_ends(region.record, length).tolist()
                         if region.start <= t < region.end}
            counts[2] += _three_prime_counts(predicted, annotated)
            counts[3] += (len(predicted & annotated), len(predicted), len(annotated))
            bits = scores.bits[:, a:b]
            bits_sum += float(np.nansum(bits))
            bits_n += int((~np.isnan(bits)).sum())
    gp, gr, gf = precision_recall_f1(*counts[0])
    rp, rr, rf = precision_recall_f1(*counts[1])
    ep, es, _ = precision_recall_f1(*counts[2])
    xp, xs, _ = precision_recall_f1(*counts[3])
    return {"file": str(fasta), "annotation": str(annotation), "model": str(model_path),
            "regions": [str(r) for r in stretches], "adapted": model is not given,
            "bases": int(sum(r.end - r.start for r in stretches)),
            "genes_precision": gp, "genes_recall": gr, "genes_f1": gf,
            "raw_precision": rp, "raw_recall": rr, "raw_f1": rf,
            "three_prime_sensitivity": es, "three_prime_precision": ep,
            "exact_gene_sensitivity": xs, "exact_gene_precision": xp,
            "five_prime_accuracy": counts[3, 0] / counts[2, 0] if counts[2, 0] else float("nan"),
            "annotated_genes": int(counts[2, 2]), "called_genes": int(counts[2, 1]),
            "bits_per_base": bits_sum / bits_n if bits_n else float("nan"),
            "seconds": time.monotonic() - started}
