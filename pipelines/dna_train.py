"""Training the DNA models (coding + language model) on annotated genomes, with a held-out region.

This module supplies seqdl's training loop (:mod:`seqdl.training`) with the DNA
parts; budgets, schedule, checkpoints, resume and Ctrl-C are the loop's. The
saved model is the best by validation, the coding and language networks each
at their own best step (coding cross-entropy, LM bits/base).

Data. Held-out regions (``--holdout``) are never read for training or model
choice; validation is the last stretch of the longest training region. Each
step draws ``batch_size`` windows at random training positions (weighted by
length), half of them reverse-complemented with the strands' labels swapped,
so the model learns both strands from every gene. A resumed run keeps the
held-out regions and the validation size.

Loss: cross-entropy of the 4 classes per strand (non-coding, codon position 0/1/2)
plus the language model's next-base cross-entropy.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import seqdl
from seqdl.errors import SeqdlError
from seqdl.nn import functional as F
from seqdl.tensor import Tensor
from seqdl.training import PARTS, Budget, Loop, Options, Outputs, Settings, Task, resolve_options

from .dna_data import Genome, Region, carve_validation, load_genome, parse_region, split_regions
from .dna_model import CLASSES, KIND, DnaConfig, DnaModel, load_dna_model, one_hot, score, shifted
from .fasta import COMPLEMENT, N


@dataclass(frozen=True)
class DnaTrainOptions(Options):
    lr: float = 3e-3
    min_lr_ratio: float = 0.05
    seq_len: int = 400
    batch_size: int = 32
    lm_weight: float = 1.0
    val_bases: int = 150_000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seq_len < 16 or self.batch_size < 1 or self.val_bases < 1:
            raise SeqdlError("--seq-len must be >= 16, --batch-size and --val-bases positive")


class Batches:
    """Random labelled windows from the training regions (a function of the step's generator only)."""

    def __init__(self, genome: Genome, regions: list[Region], seq_len: int) -> None:
        self.genome, self.seq_len = genome, seq_len
        self.regions = [r for r in regions if r.end - r.start > seq_len]
        if not self.regions:
            raise SeqdlError(f"no training region is longer than the window ({seq_len} bp)")
        sizes = np.array([r.end - r.start - seq_len for r in self.regions], np.float64)
        self.weights = sizes / sizes.sum()

    def draw(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) codes and (B, 2, T) class targets (0 non-coding, 1-3 codon position)."""
        which = rng.choice(len(self.regions), size=batch_size, p=self.weights)
        flips = rng.random(batch_size) < 0.5
        codes = np.empty((batch_size, self.seq_len), np.uint8)
        targets = np.empty((batch_size, 2, self.seq_len), np.int64)
        for row, (index, flip) in enumerate(zip(which, flips)):
            region = self.regions[index]
            start = int(rng.integers(region.start, region.end - self.seq_len))
            seq = self.genome.codes[region.record][start:start + self.seq_len]
            labels = self.genome.labels[region.record][:, start:start + self.seq_len].astype(np.int64) + 1
            if flip:  # the other strand: reverse complement, strands swapped, codon positions unchanged
                seq, labels = COMPLEMENT[seq[::-1]], labels[::-1, ::-1]
            codes[row], targets[row] = seq, labels
        return codes, targets


def losses(model: DnaModel, codes: np.ndarray, targets: np.ndarray, rows: slice = slice(None)
           ) -> tuple[Tensor, Tensor]:
    """(coding cross-entropy, LM cross-entropy in nats) of a batch, or the shares of them that its ``rows``
    carry: each a sum over the rows' scored bases divided by the whole batch's count, so the parts of a batch
    add up to its means."""
    lm_targets = np.where(codes == N, -100, codes).astype(np.int64)  # (B, T): nothing to predict at an N
    n_coding, n_lm = max(int((targets != -100).sum()), 1), max(int((lm_targets != -100).sum()), 1)
    codes, targets, lm_targets = codes[rows], targets[rows], lm_targets[rows]
    x = one_hot(codes)  # (T, B, 4)
    logits = model.coding(Tensor(x))  # (T, B, 8)
    t, b = codes.shape[1], codes.shape[0]
    coding = F.cross_entropy(logits.reshape(t * b * 2, 4), targets.transpose(2, 0, 1).reshape(-1),
                             reduction="sum") * (1.0 / n_coding)
    lm_logits = model.lm(Tensor(shifted(x)))
    lm = F.cross_entropy(lm_logits.reshape(t * b, 4), lm_targets.T.reshape(-1), reduction="sum") * (1.0 / n_lm)
    return coding, lm


def validation_loss(model: DnaModel, genome: Genome, region: Region, limit: int | None = None) -> dict[str, float]:
    """Coding cross-entropy and LM bits/base on the validation region, or its first ``limit`` bases (whole tiles,
    as scanning sees it)."""
    if limit is not None:
        region = Region(region.record, region.start, min(region.end, region.start + limit))
    codes = genome.codes[region.record]
    tile = model.config.tile
    start = region.start - region.start % tile
    scores = score(model, codes, 0, start, region.end, len(codes))
    cut = region.start - start
    probs = scores.coding[:, :, cut:]
    labels = genome.labels[region.record][:, region.start:region.end]
    noncoding = np.clip(1 - probs.sum(axis=1), 1e-7, 1)
    full = np.concatenate([noncoding[:, None], probs], axis=1)  # (2, 4, L)
    picked = np.take_along_axis(full, (labels.astype(np.int64) + 1)[:, None], axis=1)[:, 0]
    bits = scores.bits[:, cut:]
    return {"val_coding_loss": float(-np.log(np.clip(picked, 1e-7, 1)).mean()),
            "val_bits_per_base": float(np.nanmean(bits))}


@dataclass
class DnaTrainResult:
    model_path: Path
    step: int
    best_val: float | None
    best_step: int | None
    seconds: float
    interrupted: bool
    val: dict[str, float]

    def record(self) -> dict[str, Any]:
        return {"model": str(self.model_path), "step": self.step, "best_step": self.best_step,
                "val_loss": self.best_val, "seconds": self.seconds, "interrupted": self.interrupted, **self.val}


def train(fasta: Path, annotation: Path, model_path: Path, *, holdout: list[str], budget: Budget,
          resume: bool = False, force: bool = False, config_overrides: dict[str, Any] | None = None,
          train_overrides: dict[str, Any] | None = None, eval_every: int | None = None,
          checkpoint_minutes: float = 5.0, quiet: bool = False, command: str = "") -> DnaTrainResult:
    """Train (or continue) the DNA model at ``model_path``.

    A resumed run keeps the options, held-out regions and validation size it was trained with.
    """
    outputs = Outputs(model_path, resume=resume, force=force)
    model, saved = load_dna_model(outputs.checkpoint) if resume else (None, None)
    groups = resolve_options(saved, {"train": train_overrides, "model": config_overrides,
                                     "data": {"holdout": holdout or None}})
    options = DnaTrainOptions(**groups["train"])
    config = DnaConfig(**groups["model"])  # refuses bad options before the genome is read
    genome = load_genome(fasta, annotation)
    holdout = groups["data"].get("holdout", [])
    held = [parse_region(text, genome.lengths) for text in holdout]
    regions, val_region = carve_validation(split_regions(genome.lengths, held), options.val_bases)
    if model is None:
        seqdl.manual_seed(options.seed)
        model = DnaModel(config)
    batches = Batches(genome, regions, options.seq_len)
    card = {"seqdl.command": command, "seqdl.classes": ["+" + c for c in CLASSES] + ["-" + c for c in CLASSES],
            "seqdl.trained_on": {"fasta": str(fasta), "annotation": str(annotation), "holdout": [str(r) for r in held],
                                 "validation": str(val_region),
                                 "training_bases": int(sum(r.end - r.start for r in regions))}}

    def loss(net: DnaModel, batch: tuple[np.ndarray, np.ndarray], rows: slice) -> tuple[Tensor, dict[str, float]]:
        coding, lm = losses(net, *batch, rows)
        return coding + lm * options.lm_weight, {"coding_loss": float(coding.data),
                                                  "lm_bits_per_base": float(lm.data) / np.log(2)}

    task = Task(model=model, draw=lambda rng: batches.draw(rng, options.batch_size), loss=loss,
                validate=lambda limit: validation_loss(model, genome, val_region, limit),
                val_items=val_region.end - val_region.start, items_per_step=options.batch_size * options.seq_len,
                unit="bases", kind=KIND, config=model.config.to_dict(), metadata=card,
                keep_best={"coding.": "val_coding_loss", "lm.": "val_bits_per_base"},
                options={"model": model.config.to_dict(), "data": {"holdout": holdout}},
                parts=PARTS)
    settings = Settings(eval_every=eval_every, checkpoint_minutes=checkpoint_minutes, quiet=quiet)
    result = Loop(task, options, outputs, budget, settings, saved).run()
    if not result.interrupted:  # the gene decoder is fitted to the finished model's own probabilities
        from .dna_genes_fit import fit_and_store  # it uses dna_adapt, which trains with this module's batches

        fit_and_store(model_path, fasta, annotation, holdout)
    coding, bits = result.best["val_coding_loss"], result.best["val_bits_per_base"]
    best_val = None if coding is None else coding + bits * np.log(2) * options.lm_weight
    steps = [step for step in result.best_step.values() if step is not None]
    return DnaTrainResult(model_path, result.step, best_val, max(steps) if steps else None, result.seconds,
                          result.interrupted, result.last_validation)
