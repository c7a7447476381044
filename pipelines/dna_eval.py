"""``seqdl eval dna``: a DNA model against an annotation.

Measures, on each record (or only on ``--region`` stretches, e.g. a held-out region):

- base-level, strand-specific coding precision / recall / F1: a base on a strand
  is "coding" if a CDS covers it on that strand; predicted coding = inside a gene
  call (``genes_*``) and, for reference, the model's raw per-base probability
  > 0.5 (``raw_*``);
- gene-level 3'-end sensitivity / precision: a call is right if its stop codon's
  last base and strand equal an annotated CDS's (genes are counted where their
  3' end lies in the evaluated stretch);
- language-model bits/base, both strands.

Gene calling sees ``MARGIN`` bases beyond each stretch, as a scan would.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .dna_adapt import AdaptOptions, adapt
from .dna_data import Region, load_genome, parse_region
from .dna_genes import CallOptions, call_genes, call_mask
from .dna_model import load_dna_model, score
from .scan import MARGIN


def overlap_counts(predicted: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """True positives, predicted and true counts of two boolean masks."""
    return int((predicted & truth).sum()), int(predicted.sum()), int(truth.sum())


def precision_recall_f1(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else float("nan")
    recall = tp / n_true if n_true else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return precision, recall, f1


def evaluate(model_path: Path, fasta: Path, annotation: Path, regions: list[str] | None = None,
             options: CallOptions = CallOptions(), adapt_options: AdaptOptions | None = None,
             quiet: bool = True) -> dict[str, Any]:
    """The metrics above; with ``adapt_options`` the model is first fine-tuned on the FASTA (never the annotation)."""
    started = time.monotonic()
    model, _ = load_dna_model(model_path)
    genome = load_genome(fasta, annotation)
    if adapt_options is not None:
        model = adapt(model, genome.codes, adapt_options, quiet)
    stretches = ([parse_region(text, genome.lengths) for text in regions] if regions
                 else [Region(name, 0, length) for name, length in genome.lengths.items()])
    counts = np.zeros((3, 3), np.int64)  # rows: genes, raw, 3' ends; columns: tp, predicted, true
    bits_sum, bits_n = 0.0, 0
    tile = model.config.tile
    for region in stretches:
        codes = genome.codes[region.record]
        length = len(codes)
        lo = max(region.start - MARGIN, 0) // tile * tile
        hi = min(region.end + MARGIN, length)
        scores = score(model, codes, 0, lo, hi, length)
        calls = call_genes(codes[lo:hi], scores.coding, options)
        a, b = region.start - lo, region.end - lo
        truth = genome.labels[region.record][:, region.start:region.end] >= 0
        counts[0] += overlap_counts(call_mask(calls, hi - lo)[:, a:b], truth)
        counts[1] += overlap_counts(scores.coding.sum(axis=1)[:, a:b] > 0.5, truth)
        predicted = {(c.strand, c.three_prime + lo) for c in calls if region.start <= c.three_prime + lo < region.end}
        ends = genome.three_prime[region.record]
        annotated = {(int(s), int(e)) for s, e in ends if region.start <= e < region.end}
        counts[2] += (len(predicted & annotated), len(predicted), len(annotated))
        bits = scores.bits[:, a:b]
        bits_sum += float(np.nansum(bits))
        bits_n += int((~np.isnan(bits)).sum())
    gp, gr, gf = precision_recall_f1(*counts[0])
    rp, rr, rf = precision_recall_f1(*counts[1])
    ep, es, _ = precision_recall_f1(*counts[2])
    return {"file": str(fasta), "annotation": str(annotation), "model": str(model_path),
            "regions": [str(r) for r in stretches], "adapted": adapt_options is not None,
            "bases": int(sum(r.end - r.start for r in stretches)),
            "genes_precision": gp, "genes_recall": gr, "genes_f1": gf,
            "raw_precision": rp, "raw_recall": rr, "raw_f1": rf,
            "three_prime_sensitivity": es, "three_prime_precision": ep,
            "annotated_genes": int(counts[2, 2]), "called_genes": int(counts[2, 1]),
            "bits_per_base": bits_sum / bits_n if bits_n else float("nan"),
            "seconds": time.monotonic() - started}
