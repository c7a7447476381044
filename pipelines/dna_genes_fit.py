"""Fitting the gene decoder (:mod:`dna_genes`) on an annotated genome and the network's probabilities over it.

1. Start tables: counts of start codons and of the bases upstream at the annotated
   starts against every candidate start of the same ORFs.
2. Start weights: a conditional logit over the starts of the ORFs that hold a gene (which
   start is it?), on the start's own features and its distance from the ORF's first.
   Feature weights and bias: a logit over every ORF (gene or not?) on the features of its
   likeliest start; both by L-BFGS, the features' scales learnt, not set.
3. Bias, refined: the value near the logit's that maximises the F1 of the whole programme's
   3' ends on the genome (the logit sees ORFs one by one, the programme sees overlaps).

:func:`fit_and_store` scores an annotated genome (outside held-out regions) with a trained
model and stores the result in the model file, so a model and the decoder fitted to its
outputs travel together::

    python -m pipelines.dna_genes_fit --model data/dna-ecoli.safetensors --fasta ecoli.fna \
        --annotation ecoli.gff --holdout NC_000913.3:3700000-4641652
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save
from scipy.optimize import minimize

from seqdl.checkpoint import read_header
from seqdl.io import atomic_path

from .annotation import read_annotation
from .dna_adapt import gc_fraction
from .dna_data import Region, parse_region, split_regions
from .dna_genes import FEATURES, GENES_KEY, Candidates, GeneModel, best_starts, both_strands, decode, start_counts
from .dna_model import load_dna_model, score
from .fasta import read_records

L2 = 1e-3  # a little ridge so that a feature without signal stays near 0


def true_indices(per_strand: list[Candidates], ends: np.ndarray, length: int) -> list[np.ndarray]:
    """Per strand, the candidates equal to an annotated gene (``ends``: (n, 3) strand, 5' end, 3' end)."""
    out = []
    for strand, cands in enumerate(per_strand):
        mine = ends[ends[:, 0] == strand]
        if strand == 0:
            starts, stops = mine[:, 1], mine[:, 2] + 1
        else:  # reverse-complement coordinates
            starts, stops = length - 1 - mine[:, 1], length - mine[:, 2]
        key = set(zip(starts.tolist(), stops.tolist()))
        out.append(np.array([i for i, pair in enumerate(zip(cands.start.tolist(), cands.end.tolist()))
                             if pair in key], np.int64))
    return out


Record = tuple[np.ndarray, np.ndarray, np.ndarray]  # codes, coding (2, 3, L) probabilities, gene ends (n, 3)


def fit_gene_model(records: list[Record], prior: float = 200.0) -> GeneModel:
    """Decoder parameters from ``records``."""
    data = [_prepared(record) for record in records]
    counts: dict[str, np.ndarray] = {}
    for *_, per_strand, truth in data:
        for cands, index in zip(per_strand, truth):
            for name, table in start_counts(cands, index).items():
                counts[name] = counts.get(name, 0) + table
    tables = GeneModel((), 0.0, counts, prior).tables()
    groups = [(cands, index) for *_, per_strand, truth in data for cands, index in zip(per_strand, truth)]
    start_weights = _fit_start_weights(groups, tables)
    weights, bias = _fit_weights(groups, tables, start_weights)
    model = GeneModel(tuple(weights.tolist()), bias, counts, prior, start_weights=tuple(start_weights.tolist()))
    return model.with_bias(_fit_bias(model, data))


def _prepared(record: Record) -> tuple:
    codes, coding, ends = record
    per_strand = both_strands(codes, coding, 90)
    return codes, coding, ends, per_strand, true_indices(per_strand, ends, len(codes))


def _fit_weights(groups: list[tuple[Candidates, np.ndarray]], tables: dict[str, np.ndarray],
                 start_weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights and bias of the gene score: a logit over every ORF, gene or not, on the features of its likeliest
    start (by ``start_weights``), so a score is the log-odds of a gene against none, which is what the programme
    adds up. Without start weights, a conditional logit over every ORF whose outcomes are "no gene" (score 0) or a
    gene from one of its starts (score w.x + b), labelled by the annotated start."""
    chosen = []
    for cands, index in groups:
        if not len(cands):
            continue
        features = cands.features(tables)
        if len(start_weights):
            rows = best_starts(cands, cands.start_features(features) @ start_weights, top=1)
            genic = np.flatnonzero(np.isin(cands.stop[rows], cands.stop[index]))
            chosen.append((features[rows], np.arange(len(rows)), genic))   # an ORF alone per group
        else:
            chosen.append((features, cands.stop, index))
    weights = _conditional_logit(*_stacked(chosen), null=True)
    return weights[:-1], float(weights[-1])


def _fit_start_weights(groups: list[tuple[Candidates, np.ndarray]], tables: dict[str, np.ndarray]) -> np.ndarray:
    """Weights of the start choice: a conditional logit over the starts of each ORF that holds an annotated gene
    (no "no gene" outcome, so no bias), on :data:`START_FEATURES`; none (the score then chooses the start) when no
    candidate is an annotated gene."""
    chosen = []
    for cands, index in groups:
        if len(index):
            kept = np.flatnonzero(np.isin(cands.stop, cands.stop[index]))
            features = cands.start_features(cands.features(tables))
            chosen.append((features[kept], cands.stop[kept], np.searchsorted(kept, index)))
    return _conditional_logit(*_stacked(chosen), null=False) if chosen else np.empty(0)


def _stacked(chosen: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, outcome group and truth of several candidate sets (x, ORF ids, true rows) stacked, the groups
    numbered apart."""
    xs, group_ids, is_true = [], [], []
    offset = 0
    for x, orf, index in chosen:
        if not len(x):
            continue
        _, group = np.unique(orf, return_inverse=True)
        truth = np.zeros(len(x), bool)
        truth[index] = True
        xs.append(x)
        group_ids.append(group + offset)
        is_true.append(truth)
        offset += group.max() + 1
    return np.vstack(xs), np.concatenate(group_ids), np.concatenate(is_true)


def _conditional_logit(x: np.ndarray, group: np.ndarray, truth: np.ndarray, null: bool) -> np.ndarray:
    """Weights of a conditional logit, by L-BFGS on standardised features: in each group the ``truth`` rows are
    the outcome, or none when ``null`` (the "nothing" outcome scoring 0; a bias, last, then says how likely
    something is). Without ``null`` there is no bias: it would cancel within each group."""
    scale = np.where(x.std(axis=0) > 1e-6, x.std(axis=0), 1.0)  # a constant feature (one start codon only) stays as is
    order = np.argsort(group, kind="stable")
    z = np.column_stack([x[order] / scale, np.ones(len(x))]) if null else x[order] / scale
    group, truth = group[order], truth[order]
    bounds = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]]))
    sizes = np.diff(np.append(bounds, len(z)))
    n_groups = len(bounds)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        u = z @ w
        top = np.maximum.reduceat(u, bounds)
        if null:
            top = np.maximum(top, 0.0)
        e = np.exp(u - np.repeat(top, sizes))
        norm = np.add.reduceat(e, bounds) + (np.exp(-top) if null else 0.0)
        p = e / np.repeat(norm, sizes)
        value = (np.log(norm) + top).sum() - u[truth].sum()
        grad = z.T @ p - z[truth].sum(axis=0)
        ridge = np.append(w[:-1], 0.0) if null else w
        return value / n_groups + L2 * ridge @ ridge, grad / n_groups + 2 * L2 * ridge

    w = minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B").x
    return np.append(w[:-1] / scale, w[-1]) if null else w / scale


def _fit_bias(model: GeneModel, data: list) -> float:
    """The bias with the best F1 of the programme's genes (no self-training) on ``data``, searched around the
    logit's; F1 is averaged over +-0.5 first, so that a flat optimum gives its middle, not an edge. A gene counts
    by its 3' end (the bias decides gene or not; the start weights decide the start)."""
    biases = model.bias + np.arange(-8.0, 8.01, 0.25)
    f1 = []
    for bias in biases:
        tp = n_pred = n_true = 0
        for codes, coding, ends, per_strand, truth in data:
            chosen = decode(per_strand, model.with_bias(float(bias)), len(codes), [])
            for (strand, index, _), true in zip(chosen, truth):
                cands = per_strand[strand]
                tp += int(np.isin(cands.stop[index], cands.stop[true]).sum())
                n_pred += len(index)
            n_true += len(ends)
        f1.append(2 * tp / max(n_pred + n_true, 1))
    smooth = np.convolve(np.pad(f1, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    return float(biases[int(np.argmax(smooth))])


def fit_and_store(model_path: Path, fasta: Path, annotation: Path, holdout: list[str] | None = None) -> GeneModel:
    """Fit the decoder on the model's probabilities over ``fasta`` outside ``holdout`` and store it in the model."""
    model, _ = load_dna_model(model_path)
    codes = read_records(fasta)
    lengths = {name: len(seq) for name, seq in codes.items()}
    notes = read_annotation(annotation)
    notes.labels(lengths)  # checks names and coordinates
    held = [parse_region(text, lengths) for text in holdout or []]
    regions = split_regions(lengths, held)
    tile = model.config.tile
    records = []
    for region in regions:
        seq = codes[region.record]
        probs = score(model, seq, 0, region.start // tile * tile, region.end, len(seq)).coding
        records.append(region_record(seq, probs[:, :, region.start % tile:], notes.gene_ends(region.record, len(seq)),
                                     region))
    genes = replace(fit_gene_model(records), gc=gc_fraction([codes for codes, _, _ in records]))
    store_gene_model(model_path, genes)
    return genes


def region_record(seq: np.ndarray, probs: np.ndarray, gene_ends: np.ndarray, region: Region) -> Record:
    """A region of a record as a fitting record: its bases, ``probs`` (its probabilities) and the genes wholly
    inside it, in region coordinates."""
    lo, hi = np.minimum(gene_ends[:, 1], gene_ends[:, 2]), np.maximum(gene_ends[:, 1], gene_ends[:, 2])
    inside = gene_ends[(lo >= region.start) & (hi < region.end)]
    return seq[region.start:region.end], probs, inside - np.array([0, region.start, region.start])


def store_gene_model(model_path: Path, genes: GeneModel) -> None:
    """Add (or replace) the decoder parameters in a model file, leaving its tensors and other metadata as they are."""
    metadata = dict(read_header(model_path).get("__metadata__") or {})
    metadata[GENES_KEY] = genes.to_json()
    tensors = load_file(model_path)
    data = save(tensors, metadata=metadata)
    with atomic_path(model_path) as temp:
        Path(temp).write_bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--fasta", type=Path, required=True)
    parser.add_argument("--annotation", type=Path, required=True)
    parser.add_argument("--holdout", action="append", default=[])
    args = parser.parse_args()
    genes = fit_and_store(args.model, args.fasta, args.annotation, args.holdout)
    print(f"{args.model}: decoder weights {dict(zip(FEATURES, np.round(genes.weights, 4).tolist()))}, "
          f"bias {genes.bias:.2f}")


if __name__ == "__main__":
    main()
