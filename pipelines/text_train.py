"""Training a character model on a corpus with seqdl's training loop (:mod:`seqdl.training`).

This module supplies the loop with the text parts: the model, the loss of a
batch of random training windows, and the validation score (nats per
character on the held-out end of the corpus, read with carried state). Budgets,
schedule, checkpoints, resume and Ctrl-C are the loop's; see
:mod:`seqdl.training.loop`.

Files beside the model ``<name>.safetensors``: the loop's checkpoint and
metrics, and ``<name>.corpus.npy`` / ``.corpus.json``, the encoded corpus (see
:mod:`text_corpus`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import seqdl
from seqdl.errors import SeqdlError
from seqdl.io import warn
from seqdl.nn import functional as F
from seqdl.tensor import Tensor
from seqdl.training import PARTS, Budget, Loop, Options, Outputs, Settings, Task, resolve_options

from .text_corpus import Corpus, CorpusOptions, describe_chars, load_corpus
from .text_eval import array_streams, mean_nats
from .text_model import KIND, CharModel, ModelConfig, load_text_model, model_metadata, start_id

VAL_CHARS = 200_000  # validation scores at most this many characters (evenly spread): ~0.01 nats precise
VAL_WARMUP = 1024  # characters read before each scored piece, to warm the recurrent state up


@dataclass(frozen=True)
class TrainOptions(Options):
    """Hyper-parameters of the optimisation (the architecture is :class:`ModelConfig`)."""

    lr: float = 2e-3
    seq_len: int = 128
    batch_size: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("seq_len", "batch_size"):
            if getattr(self, name) < 1:
                raise SeqdlError(f"--{name.replace('_', '-')} must be positive, not {getattr(self, name)}")


@dataclass
class TrainResult:
    model_path: Path
    step: int
    best_val: float | None
    best_step: int | None
    train_loss: float | None
    seconds: float
    chars_per_second: float
    interrupted: bool
    vocab_size: int
    validation_seconds: float = 0.0
    rare: dict[str, int] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"model": str(self.model_path), "step": self.step, "val_nats_per_char": self.best_val,
                "best_step": self.best_step, "train_nats_per_char": self.train_loss, "seconds": self.seconds,
                "chars_per_second": self.chars_per_second, "interrupted": self.interrupted,
                "vocab_size": self.vocab_size}


def train(inputs: list[Path], model_path: Path, *, budget: Budget, resume: bool = False, force: bool = False,
          model_overrides: dict[str, Any] | None = None, train_overrides: dict[str, Any] | None = None,
          corpus_options: CorpusOptions = CorpusOptions(), settings: Settings = Settings(),
          command: str = "") -> TrainResult:
    """Train (or with ``resume``, continue) the model at ``model_path`` on ``inputs``.

    ``model_overrides`` / ``train_overrides`` hold the options the user gave
    (None values are ignored): fields of :class:`ModelConfig` and :class:`TrainOptions`.
    A resumed run keeps the options and validation fraction it was trained with.
    """
    outputs = Outputs(model_path, resume=resume, force=force)
    if not inputs:
        raise SeqdlError("no corpus given: name one or more text files to train on")
    if resume:
        model, vocab, saved = load_text_model(outputs.checkpoint)
    else:
        model = vocab = saved = None
    groups = resolve_options(saved, {"train": train_overrides, "model": model_overrides,
                                     "data": {"val_fraction": corpus_options.val_fraction}})
    options = TrainOptions(**groups["train"])
    corpus_options = replace(corpus_options, **groups["data"])
    if model is None:
        ModelConfig(vocab_size=1, **groups["model"])  # refuse bad options before the corpus cache is written
    corpus = load_corpus(inputs, model_path, corpus_options, vocab=vocab, window=options.seq_len, quiet=settings.quiet)
    if model is None:
        if corpus.rare:
            warn(f"{len(corpus.rare)} characters seen fewer than {corpus_options.min_count} times are mapped to the "
                 f"unknown symbol: {describe_chars(corpus.rare)}")
        seqdl.manual_seed(options.seed)
        model = CharModel(ModelConfig(vocab_size=len(corpus.vocab), **groups["model"]))
    elif corpus.n_unknown:
        warn(f"{corpus.n_unknown} characters of the corpus are outside the model's vocabulary (scored as unknown)")
    task = text_task(model, corpus, options, corpus_options, inputs, command)
    result = Loop(task, options, outputs, budget, settings, saved).run()
    return TrainResult(model_path=model_path, step=result.step, best_val=result.best["val_nats_per_char"],
                       best_step=result.best_step["val_nats_per_char"], train_loss=result.train_loss,
                       seconds=result.seconds, chars_per_second=result.items_per_second,
                       interrupted=result.interrupted, vocab_size=len(corpus.vocab),
                       validation_seconds=result.validation_seconds, rare=corpus.rare)


def window_loss(net: CharModel, batch: tuple[np.ndarray, np.ndarray], rows: slice
                ) -> tuple[Tensor, dict[str, float]]:
    """The share of a batch of windows' (inputs, targets) mean cross-entropy that its ``rows`` carry."""
    x, y = batch[0][rows], batch[1][rows]
    logits, _ = net(x)
    share = len(x) / len(batch[0])  # every row has seq_len targets
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)) * share, {}


def text_task(model: CharModel, corpus: Corpus, options: TrainOptions, corpus_options: CorpusOptions,
              inputs: list[Path], command: str) -> Task:
    """The loop's view of a character model on a corpus."""

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return corpus.windows(rng, options.batch_size, options.seq_len)

    def validate(limit: int) -> dict[str, float]:
        # the warm-up stays under a quarter of each of the 16 pieces, so small validations are not mostly warm-up
        streams = array_streams(corpus.data, corpus.n_train, len(corpus.data), pieces=16,
                                warmup=min(VAL_WARMUP, limit // 64), max_chars=limit,
                                first_input=start_id(corpus.vocab))
        corpus.release()  # the streams hold copies
        return {"val_nats_per_char": mean_nats(model, streams)}

    trained_on = {"files": [{"path": str(p), "bytes": p.stat().st_size} for p in inputs],
                  "characters": len(corpus.data), "train_characters": corpus.n_train,
                  "val_characters": len(corpus.val)}
    return Task(model=model, draw=draw, loss=window_loss, validate=validate,
                val_items=min(len(corpus.val), VAL_CHARS),
                items_per_step=options.batch_size * options.seq_len, unit="chars", kind=KIND,
                config=model.config.to_dict(),
                metadata={**model_metadata(corpus.vocab), "seqdl.command": command, "seqdl.trained_on": trained_on},
                keep_best={"": "val_nats_per_char"},
                options={"model": model.config.to_dict(), "data": {"val_fraction": corpus_options.val_fraction}},
                parts=PARTS)
