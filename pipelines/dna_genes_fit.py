"""Fitting the gene decoder (:mod:`dna_genes`) on an annotated genome and the network's probabilities over it.

1. Start tables: counts of start codons and of the bases upstream at the annotated
   starts against every candidate start of the same ORFs.
2. Start weights: a conditional logit over the starts of the ORFs that hold a gene (which
   start is it?), on the start's own features and its distance from the ORF's first.
   Feature weights and bias: a logit over every ORF (gene or not?) on the features of its
   likeliest start; both by L-BFGS, the features' scales learnt, not set.
3. The codon-usage weight and the bias: the pair that maximises the F1 of the whole programme's
   3' ends, averaged over the genomes (the logit sees ORFs one by one, the programme sees
   overlaps; and on the genome the network was trained on, the logit finds nothing for codon
   usage to add, which is not so on the genomes a user brings).

Several annotated genomes can be given; each record's features use its own tables (its own
starts and codon usage), as self-training gives every genome at inference.

:func:`fit_and_store` scores an annotated genome (outside held-out regions) with a trained
model and stores the result in the model file, so a model and the decoder fitted to its
outputs travel together::

    python -m pipelines.dna_genes_fit --model data/dna-ecoli.safetensors --fasta ecoli.fna \
        --annotation ecoli.gff --holdout NC_000913.3:3700000-4641652 --also hinf.fna hinf.gb
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save
from scipy.optimize import minimize

from seqdl.checkpoint import read_header
from seqdl.io import atomic_path

from .annotation import read_annotation
from .dna_adapt import AdaptOptions, adapted_for, gc_fraction
from .dna_data import Region, parse_region, split_regions
from .dna_genes import (FEATURES, GENES_KEY, TABLES, Candidates, GeneModel, best_starts, both_strands, decode,
                        table_counts)
from .dna_model import DnaModel, load_dna_model, score
from .fasta import read_records

GENES_COMMAND_KEY = "seqdl.genes_command"  # how the stored decoder was fitted
L2 = 1e-3  # a little ridge so that a feature without signal stays near 0
HEX = FEATURES.index("hexamer")
LOGIT = [i for i in range(len(FEATURES)) if i != HEX]  # the features the logit weighs
HEXAMER_WEIGHTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4)  # nats per nat of codon-pair log-odds (sums of hundreds)


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


def fit_gene_model(records: list[Record], also: list[Record] = (), prior: float = 200.0) -> GeneModel:
    """Decoder parameters from ``records``, of the genome the network was trained on: the tables' counts (the prior
    of self-training), the start choice and the logit; the codon-usage weight and the bias on those and on the
    records ``also``, of other annotated genomes (the network's outputs over them as a scan gets them). Each
    record's features come from its own tables (its genes' starts and codon pairs), as self-training gives each
    genome its own."""
    data = [_prepared(record) for record in records]
    counts = {name: sum(own[name] for *_, own in data) for name in TABLES}
    groups = [(cands, index, GeneModel((), 0.0, own, prior).tables())
              for _, _, _, per_strand, truth, own in data for cands, index in zip(per_strand, truth)]
    start_weights = _fit_start_weights(groups)
    weights, bias = _fit_weights(groups, start_weights)
    model = GeneModel(tuple(weights.tolist()), bias, counts, prior, start_weights=tuple(start_weights.tolist()))
    return _fit_programme(model, data + [_prepared(record) for record in also])


def _prepared(record: Record) -> tuple:
    """The record, its candidates per strand, the annotated genes among them and the tables' counts at those."""
    codes, coding, ends = record
    per_strand = both_strands(codes, coding, 90)
    truth = true_indices(per_strand, ends, len(codes))
    own = {name: sum(table_counts(cands, index)[name] for cands, index in zip(per_strand, truth)) for name in TABLES}
    return codes, coding, ends, per_strand, truth, own


Group = tuple[Candidates, np.ndarray, dict[str, np.ndarray]]  # one strand's candidates, the true ones, its tables


def _fit_weights(groups: list[Group], start_weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights and bias of the gene score: a logit over every ORF, gene or not, on the features of its likeliest
    start (by ``start_weights``), so a score is the log-odds of a gene against none, which is what the programme
    adds up. Without start weights, a conditional logit over every ORF whose outcomes are "no gene" (score 0) or a
    gene from one of its starts (score w.x + b), labelled by the annotated start. The codon-usage weight is left at
    0 here (:func:`_fit_programme` sets it)."""
    chosen = []
    for cands, index, tables in groups:
        if not len(cands):
            continue
        features = cands.features(tables)
        if len(start_weights):
            rows = best_starts(cands, cands.start_features(features) @ start_weights, top=1)
            genic = np.flatnonzero(np.isin(cands.stop[rows], cands.stop[index]))
            chosen.append((features[rows], np.arange(len(rows)), genic))   # an ORF alone per group
        else:
            chosen.append((features, cands.stop, index))
    x, group, truth = _stacked(chosen)
    weights = _conditional_logit(x[:, LOGIT], group, truth, null=True)
    full = np.zeros(len(FEATURES))
    full[LOGIT] = weights[:-1]
    return full, float(weights[-1])


def _fit_start_weights(groups: list[Group]) -> np.ndarray:
    """Weights of the start choice: a conditional logit over the starts of each ORF that holds an annotated gene
    (no "no gene" outcome, so no bias), on :data:`START_FEATURES`; none (the score then chooses the start) when no
    candidate is an annotated gene."""
    chosen = []
    for cands, index, tables in groups:
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


def _fit_programme(model: GeneModel, data: list) -> GeneModel:
    """``model`` with the codon-usage weight and the bias under which the programme's genes (each record with its
    own tables) have the best F1, averaged over the records; the bias searched around the logit's. F1 is averaged
    over +-0.5 of bias first, so that a flat optimum gives its middle, not an edge. A gene counts by its 3' end
    (these decide gene or not; the start weights decide the start)."""
    biases = model.bias + np.arange(-4.0, 4.01, 0.25)
    best = (-1.0, model)
    for weight in HEXAMER_WEIGHTS:
        weighted = replace(model, weights=model.weights[:HEX] + (weight,) + model.weights[HEX + 1:])
        f1 = np.mean([[_f1(weighted.with_bias(float(bias)).with_counts(own), codes, ends, per_strand, truth)
                       for bias in biases] for codes, _, ends, per_strand, truth, own in data], axis=0)
        smooth = np.convolve(np.pad(f1, 2, mode="edge"), np.ones(5) / 5, mode="valid")
        k = int(np.argmax(smooth))
        if smooth[k] > best[0]:
            best = (smooth[k], weighted.with_bias(float(biases[k])))
    return best[1]


def _f1(model: GeneModel, codes: np.ndarray, ends: np.ndarray, per_strand: list[Candidates],
        truth: list[np.ndarray]) -> float:
    """F1 of the programme's genes by their 3' ends (no self-training: the tables are given)."""
    tp = n_pred = 0
    for (strand, index, _), true in zip(decode(per_strand, model, len(codes), []), truth):
        tp += int(np.isin(per_strand[strand].stop[index], per_strand[strand].stop[true]).sum())
        n_pred += len(index)
    return 2 * tp / max(n_pred + len(ends), 1)


def fit_and_store(model_path: Path, fasta: Path, annotation: Path, holdout: list[str] | None = None,
                  also: list[tuple[Path, Path]] = (), command: str | None = None) -> GeneModel:
    """Fit the decoder on the model's probabilities over ``fasta`` outside ``holdout`` (the genome it was trained
    on) and over the genomes ``also`` ((FASTA, annotation) pairs, whole, scanned as ``seqdl scan`` does by default:
    adapted to first where their GC content calls for it), and store it in the model."""
    model, _ = load_dna_model(model_path)
    records = _records(model, fasta, annotation, holdout or [])
    others = [record for path, notes in also
              for record in _records(adapted_for(model, path, AdaptOptions(auto=True), quiet=True), path, notes, [])]
    genes = replace(fit_gene_model(records, others), gc=gc_fraction([codes for codes, _, _ in records]))
    store_gene_model(model_path, genes, command)
    return genes


def _records(model: DnaModel, fasta: Path, annotation: Path, holdout: list[str]) -> list[Record]:
    """Fitting records of the regions of ``fasta`` outside ``holdout``, with ``model``'s probabilities."""
    codes = read_records(fasta)
    lengths = {name: len(seq) for name, seq in codes.items()}
    notes = read_annotation(annotation)
    notes.labels(lengths)  # checks names and coordinates
    regions = split_regions(lengths, [parse_region(text, lengths) for text in holdout])
    tile = model.config.tile
    records = []
    for region in regions:
        seq = codes[region.record]
        probs = score(model, seq, 0, region.start // tile * tile, region.end, len(seq)).coding
        records.append(region_record(seq, probs[:, :, region.start % tile:], notes.gene_ends(region.record, len(seq)),
                                     region))
    return records


def region_record(seq: np.ndarray, probs: np.ndarray, gene_ends: np.ndarray, region: Region) -> Record:
    """A region of a record as a fitting record: its bases, ``probs`` (its probabilities) and the genes wholly
    inside it, in region coordinates."""
    lo, hi = np.minimum(gene_ends[:, 1], gene_ends[:, 2]), np.maximum(gene_ends[:, 1], gene_ends[:, 2])
    inside = gene_ends[(lo >= region.start) & (hi < region.end)]
    return seq[region.start:region.end], probs, inside - np.array([0, region.start, region.start])


def store_gene_model(model_path: Path, genes: GeneModel, command: str | None = None) -> None:
    """Add (or replace) the decoder parameters in a model file (and the command that fitted them, if given), leaving
    its tensors and other metadata as they are."""
    metadata = dict(read_header(model_path).get("__metadata__") or {})
    metadata[GENES_KEY] = genes.to_json()
    if command is not None:
        metadata[GENES_COMMAND_KEY] = command
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
    parser.add_argument("--also", nargs=2, action="append", default=[], type=Path, metavar=("FASTA", "ANNOTATION"),
                        help="another annotated genome the codon-usage weight and the bias are chosen on too")
    args = parser.parse_args()
    genes = fit_and_store(args.model, args.fasta, args.annotation, args.holdout, [tuple(pair) for pair in args.also],
                          command=" ".join(["python -m pipelines.dna_genes_fit", *sys.argv[1:]]))
    print(f"{args.model}: decoder weights {dict(zip(FEATURES, np.round(genes.weights, 4).tolist()))}, "
          f"bias {genes.bias:.2f}")


if __name__ == "__main__":
    main()
