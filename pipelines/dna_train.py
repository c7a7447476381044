"""Training the DNA models (coding + language model) on annotated genomes, with a held-out region.

Files beside the model ``<name>.safetensors`` (as for text, see :mod:`text_train`):
the best model by validation loss (the coding and language networks each at their own best step); ``<name>.checkpoint.safetensors`` (weights,
AdamW, schedule, RNG, step) for ``--resume``; ``<name>.metrics.parquet``.

Data. Held-out regions (``--holdout``) are never read for training or model
choice; validation is the last stretch of the longest training region. Each
step draws ``batch_size`` windows at random training positions (weighted by
length), half of them reverse-complemented with the strands' labels swapped,
so the model learns both strands from every gene. The batch of step ``s`` comes
from a generator seeded with ``(seed, s)``, so a resumed run repeats exactly the
steps an unbroken one would.

Loss: cross-entropy of the 4 classes per strand (non-coding, codon position 0/1/2)
plus the language model's next-base cross-entropy.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

import seqdl
from seqdl import checkpoint
from seqdl.errors import SeqdlError
from seqdl.io import check_output_path, hide_progress, stderr_console
from seqdl.metrics import MetricLogger
from seqdl.nn import functional as F
from seqdl.optim import AdamW, WarmupCosine, clip_grad_norm_
from seqdl.tensor import Tensor
from seqdl.training import Budget, StopRequest, batch_rng, checkpoint_path, metrics_path

from .dna_data import Genome, Region, carve_validation, load_genome, parse_region, split_regions
from .dna_model import CLASSES, KIND, DnaConfig, DnaModel, load_dna_model, one_hot, score, shifted
from .fasta import COMPLEMENT, N

TRAINING_KEY = "seqdl.training"


@dataclass(frozen=True)
class DnaTrainOptions:
    seq_len: int = 400
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    clip: float = 1.0
    lm_weight: float = 1.0
    val_bases: int = 150_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.seq_len < 16 or self.batch_size < 1 or self.val_bases < 1:
            raise SeqdlError("--seq-len must be >= 16, --batch-size and --val-bases positive")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_steps < 0 or not self.clip > 0:
            raise SeqdlError("--lr and --clip must be positive, --weight-decay and --warmup-steps >= 0")


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


def losses(model: DnaModel, codes: np.ndarray, targets: np.ndarray) -> tuple[Tensor, Tensor]:
    """(coding cross-entropy, LM cross-entropy in nats) for a batch."""
    x = one_hot(codes)  # (T, B, 4)
    logits = model.coding(Tensor(x))  # (T, B, 8)
    t, b = codes.shape[1], codes.shape[0]
    coding = F.cross_entropy(logits.reshape(t * b * 2, 4), targets.transpose(2, 0, 1).reshape(-1))
    lm_logits = model.lm(Tensor(shifted(x)))
    lm_target = np.where(codes.T == N, -100, codes.T).astype(np.int64).reshape(-1)
    lm = F.cross_entropy(lm_logits.reshape(t * b, 4), lm_target, ignore_index=-100)
    return coding, lm


def validation_loss(model: DnaModel, genome: Genome, region: Region) -> dict[str, float]:
    """Coding cross-entropy and LM bits/base on the validation region (whole tiles, as scanning sees it)."""
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


def keep_best(state: dict[str, Any], best: DnaModel, model: DnaModel, val: dict[str, float], lm_weight: float
              ) -> None:
    """Copy each of the two (independent) networks into ``best`` when its own validation loss improves: the coding
    model by coding cross-entropy, the language model by bits/base, so neither's best step is traded for the
    other's."""
    parts = (("coding", "val_coding_loss", model.coding, best.coding), ("lm", "val_bits_per_base", model.lm, best.lm))
    for name, key, current, kept in parts:
        if state.get(f"best_{name}") is None or val[key] < state[f"best_{name}"]:
            state[f"best_{name}"], state[f"best_{name}_step"] = float(val[key]), state["step"]
            kept.load_state_dict(current.state_dict())
            state["best_step"] = state["step"]
    state["best_val"] = state["best_coding"] + state["best_lm"] * np.log(2) * lm_weight


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
    """Train (or continue) the DNA model at ``model_path``."""
    check_output_path(model_path)
    config_overrides = {k: v for k, v in (config_overrides or {}).items() if v is not None}
    train_overrides = {k: v for k, v in (train_overrides or {}).items() if v is not None}
    ckpt = checkpoint_path(model_path)
    if not resume and model_path.exists() and not force:
        raise SeqdlError("already exists: continue it with --resume, or pass --force to train a new model over it",
                         str(model_path))
    if resume and not ckpt.exists():
        raise SeqdlError(f"nothing to resume: no training checkpoint {ckpt.name} beside this model", str(model_path))
    genome = load_genome(fasta, annotation)
    held = [parse_region(text, genome.lengths) for text in holdout]
    regions, val_region = carve_validation(split_regions(genome.lengths, held),
                                           DnaTrainOptions(**train_overrides).val_bases)
    state: dict[str, Any] = {"step": 0, "seconds": 0.0, "best_val": None, "best_step": None}
    if resume:
        model, saved = load_dna_model(ckpt)
        state = saved.metadata.get(TRAINING_KEY)
        if not isinstance(state, dict) or saved.optimizer_state is None:
            raise SeqdlError("is not a training checkpoint", str(ckpt))
        options = DnaTrainOptions(**state["options"])
        if budget.given:
            state["budget"] = budget.to_dict()
        budget = Budget(**state["budget"])
    else:
        options = DnaTrainOptions(**train_overrides)
        budget = budget.or_default()
        seqdl.manual_seed(options.seed)
        model = DnaModel(DnaConfig(**config_overrides))
    optimizer = AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    scheduler = WarmupCosine(optimizer, options.warmup_steps, budget.steps or options.warmup_steps + 2000,
                             min_lr=options.lr * options.min_lr_ratio)
    best = DnaModel(model.config)
    best.load_state_dict(model.state_dict())
    if resume:
        saved.restore(model, optimizer, scheduler)
        if model_path.exists():
            best.load_state_dict(load_dna_model(model_path)[0].state_dict())
    batches = Batches(genome, regions, options.seq_len)
    card = {"seqdl.command": command, "seqdl.trained_on": {
        "fasta": str(fasta), "annotation": str(annotation), "holdout": [str(r) for r in held],
        "validation": str(val_region), "training_bases": int(sum(r.end - r.start for r in regions))}}

    def save(val: dict[str, float]) -> None:
        meta = {**card, "seqdl.metrics": {**val, "step": state["step"], "best_step": state["best_step"],
                                          "best_coding_step": state.get("best_coding_step"),
                                          "best_lm_step": state.get("best_lm_step"),
                                          "best_val_coding_loss": state.get("best_coding"),
                                          "best_val_bits_per_base": state.get("best_lm")},
                "seqdl.classes": ["+" + c for c in CLASSES] + ["-" + c for c in CLASSES]}
        checkpoint.save(model_path, best, step=state["best_step"], config=model.config.to_dict(), metadata=meta,
                        kind=KIND)
        train_state = {**state, "options": asdict(options), "budget": budget.to_dict()}
        checkpoint.save(ckpt, model, optimizer=optimizer, step=state["step"], config=model.config.to_dict(),
                        metadata={**meta, TRAINING_KEY: train_state}, kind=KIND, scheduler=scheduler)

    started_step = state["step"]
    every = eval_every or (max(1, budget.steps // 10) if budget.steps else None)
    eval_seconds = None if every else max(30.0, budget.minutes * 60 / 10)
    last_val: dict[str, float] = {}
    logger = MetricLogger(metrics_path(model_path), flush_every=200, flush_seconds=60.0, resume=resume,
                          resume_step=state["step"], metadata={"seqdl.command": command})
    clock = time.monotonic() - state["seconds"]
    last_eval = last_ckpt = time.monotonic()
    reserve = 0.0
    columns = [TextColumn("[bold]training dna"), BarColumn(), TextColumn("{task.fields[status]}"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with logger, StopRequest() as stop, Progress(*columns, console=stderr_console,
                                                  disable=hide_progress(quiet)) as progress:
        total = budget.steps or budget.minutes * 60
        task = progress.add_task("train", total=total, status="")

        def done() -> bool:
            if budget.steps is not None:
                return state["step"] >= budget.steps
            return state["seconds"] + reserve >= budget.minutes * 60

        while not done() and not stop.requested:
            step_started = time.monotonic()
            codes, targets = batches.draw(batch_rng(options.seed, state["step"]), options.batch_size)
            model.train()
            optimizer.zero_grad()
            coding_loss, lm_loss = losses(model, codes, targets)
            loss = coding_loss + lm_loss * options.lm_weight
            loss.backward()
            grad_norm = clip_grad_norm_(model.parameters(), options.clip)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            state["step"] += 1
            now = time.monotonic()
            state["seconds"] = now - clock
            row = {"coding_loss": float(coding_loss.data), "lm_bits_per_base": float(lm_loss.data) / np.log(2),
                   "lr": lr, "grad_norm": grad_norm,
                   "bases_per_second": codes.size / max(now - step_started, 1e-9)}
            due = (every and state["step"] % every == 0) or (eval_seconds and now - last_eval >= eval_seconds)
            if due or done():
                eval_started = time.monotonic()
                last_val = validation_loss(model, genome, val_region)
                row.update(last_val)
                keep_best(state, best, model, last_val, options.lm_weight)
                last_eval = time.monotonic()
                reserve = max(reserve, 1.5 * (last_eval - eval_started))
            logger.log(state["step"], **row)
            if time.monotonic() - last_ckpt >= checkpoint_minutes * 60:
                save(last_val)
                last_ckpt = time.monotonic()
            if budget.minutes is not None and state["step"] - started_step >= 10 and state["step"] % 10 == 0:
                per_step = state["seconds"] / state["step"]
                remaining = max(budget.minutes * 60 - reserve - state["seconds"], 0.0)
                scheduler.total_steps = max(state["step"] + int(remaining / per_step), options.warmup_steps + 1)
            progress.update(task, completed=state["step"] if budget.steps else state["seconds"],
                            status=f"step {state['step']} coding {row['coding_loss']:.3f} "
                                   f"lm {row['lm_bits_per_base']:.3f} bits "
                                   f"val {last_val.get('val_coding_loss', float('nan')):.3f}/"
                                   f"{last_val.get('val_bits_per_base', float('nan')):.3f}")
        interrupted = stop.requested and not done()
        state["seconds"] = time.monotonic() - clock
        save(last_val)
    return DnaTrainResult(model_path, state["step"], state["best_val"], state["best_step"], state["seconds"],
                          interrupted, last_val)

