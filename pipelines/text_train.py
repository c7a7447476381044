"""Training a character model on a corpus: the loop, its schedule, checkpoints, resume and Ctrl-C.

Files beside the model ``<name>.safetensors``:

- ``<name>.safetensors``: the best model so far (by validation loss), with its
  config, vocabulary and model card; what sampling and scoring load;
- ``<name>.checkpoint.safetensors``: the latest training state (weights,
  AdamW state, step, schedule, RNG, plan), written every few minutes, at the
  end and on Ctrl-C; ``--resume`` continues from it;
- ``<name>.metrics.parquet``: one row per step (train loss, lr, gradient norm,
  chars/s, and validation loss where measured), drawn by ``seqdl plot``;
- ``<name>.corpus.npy`` / ``.corpus.json``: the encoded corpus (see :mod:`text_corpus`).

Exact resume. The batch of step ``s`` is drawn by a generator seeded with
``(seed, s)``, so the data order depends on nothing but the seed and the step;
dropout draws from seqdl's global generator, whose state the checkpoint stores.
With the optimizer and scheduler state restored too, a run split by Ctrl-C and
``--resume`` computes exactly the same steps as one that was never stopped.

Budgets. A run (or, after a finished run, each ``--resume``) is a *cycle*:
linear warm-up then cosine decay to ``min_lr_ratio * lr``, over ``--steps`` or
``--minutes``. For a time budget the number of steps is estimated from the
measured time per step (evaluations and checkpoints included) and refined as
training goes. Resuming an unfinished cycle continues it (its budget counts
from the cycle's start); resuming a finished one starts a new cycle of the
given budget (10 minutes by default), with the optimizer state carried over.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

import seqdl
from seqdl import checkpoint
from seqdl.errors import SeqdlError
from seqdl.io import check_output_path, hide_progress, stderr_console, warn
from seqdl.metrics import MetricLogger
from seqdl.nn import functional as F
from seqdl.optim import AdamW, WarmupCosine, clip_grad_norm_
from seqdl.training import Budget, StopRequest, batch_rng, checkpoint_path, metrics_path

from .text_corpus import Corpus, CorpusOptions, describe_chars, load_corpus
from .text_eval import array_streams, mean_nats
from .text_model import KIND, CharModel, ModelConfig, load_text_model, model_metadata, start_id

TRAINING_KEY = "seqdl.training"


@dataclass(frozen=True)
class TrainOptions:
    """Hyper-parameters of the optimisation (the architecture is :class:`ModelConfig`)."""

    seq_len: int = 128
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("seq_len", "batch_size"):
            if getattr(self, name) < 1:
                raise SeqdlError(f"--{name.replace('_', '-')} must be positive, not {getattr(self, name)}")
        if not self.lr > 0:
            raise SeqdlError(f"--lr must be positive, not {self.lr}")
        if self.weight_decay < 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1 or not self.clip > 0:
            raise SeqdlError("--weight-decay and --warmup-steps must be >= 0, --clip > 0, min-lr ratio in [0, 1]")


@dataclass
class Cycle:
    """Where training stands in the current warm-up + cosine cycle (stored in the checkpoint)."""

    budget: Budget
    start_step: int
    seconds: float = 0.0  # wall time spent in this cycle so far
    finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget.to_dict(), "start_step": self.start_step, "seconds": self.seconds,
                "finished": self.finished}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Cycle":
        return cls(Budget(**values["budget"]), int(values["start_step"]), float(values["seconds"]),
                   bool(values["finished"]))


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
    rare: dict[str, int] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"model": str(self.model_path), "step": self.step, "val_nats_per_char": self.best_val,
                "best_step": self.best_step, "train_nats_per_char": self.train_loss, "seconds": self.seconds,
                "chars_per_second": self.chars_per_second, "interrupted": self.interrupted,
                "vocab_size": self.vocab_size}


@dataclass(frozen=True)
class RunSettings:
    """How a session reports and saves, as opposed to what it learns (not part of exact resume)."""

    eval_every: int | None = None  # steps between validations; None: ~15 per cycle
    checkpoint_minutes: float = 5.0
    val_chars: int = 200_000  # validation scores at most this many characters (evenly spread): ~0.01 nats precise,
    # and ~15 validations stay a small part of a 10-minute run
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.eval_every is not None and self.eval_every < 1:
            raise SeqdlError(f"--eval-every must be positive, not {self.eval_every}")
        if not self.checkpoint_minutes > 0:
            raise SeqdlError(f"--checkpoint-minutes must be positive, not {self.checkpoint_minutes}")


class Trainer:
    """One training session: the model, AdamW, the schedule and the loop, saving as it goes."""

    def __init__(self, corpus: Corpus, model: CharModel, options: TrainOptions, cycle: Cycle, model_path: Path,
                 settings: RunSettings, step: int = 0, best_val: float | None = None,
                 best_step: int | None = None) -> None:
        self.corpus, self.model, self.options, self.cycle = corpus, model, options, cycle
        self.model_path, self.settings = model_path, settings
        self.step, self.best_val, self.best_step = step, best_val, best_step
        self.model_card: dict[str, Any] = {}
        self.optimizer = AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
        self.scheduler: WarmupCosine | None = None
        self.best_model = CharModel(model.config)
        self.best_model.load_state_dict(model.state_dict())
        self.has_validation = len(corpus.val) > 0
        self.eval_every, self.eval_seconds = self._eval_interval()
        self.last_val: float | None = None
        self.last_train: float | None = None
        self._reserve = 0.0  # seconds kept back at the end of a time budget for the last evaluation and save

    # ------------------------------------------------------------ set-up
    def _eval_interval(self) -> tuple[int | None, float | None]:
        """Validate every so many steps (``--eval-every``), or by default ~15 times per cycle."""
        if self.settings.eval_every is not None:
            return self.settings.eval_every, None
        if self.cycle.budget.steps is not None:
            return max(1, self.cycle.budget.steps // 15), None
        return None, max(30.0, self.cycle.budget.minutes * 60 / 15)

    def _cycle_total_steps(self) -> int:
        if self.cycle.budget.steps is not None:
            return self.cycle.budget.steps
        return self.options.warmup_steps + 1000  # refined from the measured step time once training runs

    def new_schedule(self) -> None:
        self.scheduler = WarmupCosine(self.optimizer, self.options.warmup_steps, self._cycle_total_steps(),
                                      min_lr=self.options.lr * self.options.min_lr_ratio)

    def restore(self, saved: checkpoint.Checkpoint, continue_cycle: bool) -> None:
        """Weights, optimizer, schedule (unless a new cycle starts) and the global RNG from a checkpoint."""
        if continue_cycle:
            self.new_schedule()
            saved.restore(self.model, self.optimizer, self.scheduler)
        else:
            saved.restore(self.model, self.optimizer)
            self.new_schedule()

    # ------------------------------------------------------------- state
    def _cycle_done(self) -> bool:
        budget = self.cycle.budget
        if budget.steps is not None:
            return self.step - self.cycle.start_step >= budget.steps
        return self.cycle.seconds + self._reserve >= budget.minutes * 60

    def _training_state(self) -> dict[str, Any]:
        return {"options": asdict(self.options), "cycle": self.cycle.to_dict(), "best_val": self.best_val,
                "best_step": self.best_step, "val_fraction": self.model_card.get("val_fraction")}

    def save(self) -> None:
        """The best model, then the training checkpoint (each written atomically)."""
        config = self.model.config.to_dict()
        card = {**self.model_card, "seqdl.metrics": {"val_nats_per_char": self.best_val, "best_step": self.best_step,
                                                    "train_nats_per_char": self.last_train, "step": self.step}}
        meta = {**model_metadata(self.corpus.vocab), **{k: v for k, v in card.items() if k.startswith("seqdl.")}}
        best = self.best_model if self.has_validation else self.model
        checkpoint.save(self.model_path, best, step=self.best_step if self.has_validation else self.step,
                        config=config, metadata=meta, kind=KIND)
        meta[TRAINING_KEY] = self._training_state()
        checkpoint.save(checkpoint_path(self.model_path), self.model, optimizer=self.optimizer, step=self.step,
                        config=config, metadata=meta, kind=KIND, scheduler=self.scheduler)

    # -------------------------------------------------------------- loop
    def validate(self) -> float:
        streams = array_streams(self.corpus.data, self.corpus.n_train, len(self.corpus.data), pieces=16,
                                warmup=1024, max_chars=self.settings.val_chars, first_input=start_id(self.corpus.vocab))
        self.corpus.release()  # the streams hold copies
        return mean_nats(self.model, streams)

    def train_step(self) -> tuple[float, float, float]:
        """One optimizer step on fresh random windows: (loss, gradient norm before clipping, lr used)."""
        o = self.options
        lr = self.optimizer.param_groups[0]["lr"]
        x, y = self.corpus.windows(batch_rng(o.seed, self.step), o.batch_size, o.seq_len)
        self.model.train()
        self.optimizer.zero_grad()
        logits, _ = self.model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        grad_norm = clip_grad_norm_(self.model.parameters(), o.clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return float(loss.data), grad_norm, lr

    def run(self, logger: MetricLogger) -> bool:
        """Train until the cycle's budget is spent or Ctrl-C; returns whether it was interrupted."""
        o = self.options
        chars_per_step = o.batch_size * o.seq_len
        started = time.monotonic() - self.cycle.seconds
        last_eval_time = last_checkpoint = time.monotonic()
        last_eval_step = self.step
        speed = None
        with StopRequest() as stop, self._progress() as progress:
            task = progress.add_task("training", total=self._progress_total(), status="")
            while not self._cycle_done() and not stop.requested:
                step_started = time.monotonic()
                loss, grad_norm, lr = self.train_step()
                now = time.monotonic()
                self.cycle.seconds = now - started
                rate = chars_per_step / max(now - step_started, 1e-9)
                speed = rate if speed is None else 0.9 * speed + 0.1 * rate
                self.last_train = loss if self.last_train is None else 0.95 * self.last_train + 0.05 * loss
                row = {"train_loss": loss, "lr": lr, "grad_norm": grad_norm,
                       "chars_per_second": rate}
                # by step number, not steps since the last one: a resumed run validates where an unbroken one would
                due = (self.eval_every is not None and self.step % self.eval_every == 0) or \
                      (self.eval_seconds is not None and now - last_eval_time >= self.eval_seconds)
                if self.has_validation and (due or self._cycle_done()):
                    eval_started = time.monotonic()
                    row["val_loss"] = self._evaluate()
                    self._reserve = max(self._reserve, 1.5 * (time.monotonic() - eval_started))
                    last_eval_time, last_eval_step = time.monotonic(), self.step
                logger.log(self.step, **row)
                if time.monotonic() - last_checkpoint >= self.settings.checkpoint_minutes * 60:
                    save_started = time.monotonic()
                    self.save()
                    last_checkpoint = time.monotonic()
                    self._reserve = max(self._reserve, 1.5 * (last_checkpoint - save_started))
                self.cycle.seconds = time.monotonic() - started
                self._replan()
                progress.update(task, completed=self._progress_done(), total=self._progress_total(),
                                status=self._status(speed))
            interrupted = stop.requested and not self._cycle_done()
            # no extra validation when interrupted: it could change the best model and break exact resume
            if self.has_validation and not interrupted and last_eval_step != self.step:
                logger.log(self.step, val_loss=self._evaluate())
            self.cycle.seconds = time.monotonic() - started
            self.cycle.finished = not interrupted
            self.save()
            logger.flush()
        return interrupted

    def _evaluate(self) -> float:
        val = self.validate()
        self.last_val = val
        if self.best_val is None or val < self.best_val:
            self.best_val, self.best_step = val, self.step
            self.best_model.load_state_dict(self.model.state_dict())
        return val

    def _replan(self) -> None:
        """For a time budget: stretch or shrink the cosine so it ends when the time runs out."""
        budget = self.cycle.budget
        done = self.step - self.cycle.start_step
        if budget.minutes is None or done < 10 or done % 10:
            return
        per_step = self.cycle.seconds / done
        remaining = max(budget.minutes * 60 - self._reserve - self.cycle.seconds, 0.0)
        self.scheduler.total_steps = max(done + int(remaining / per_step), self.options.warmup_steps + 1)

    # ---------------------------------------------------------- progress
    def _progress(self) -> Progress:
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                   TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn()]
        return Progress(*columns, console=stderr_console, disable=hide_progress(self.settings.quiet))

    def _progress_total(self) -> float:
        budget = self.cycle.budget
        return budget.steps if budget.steps is not None else budget.minutes * 60

    def _progress_done(self) -> float:
        return self.step - self.cycle.start_step if self.cycle.budget.steps is not None else self.cycle.seconds

    def _status(self, speed: float | None) -> str:
        val = "-" if self.last_val is None else f"{self.last_val:.3f}"
        return (f"step {self.step}  loss {self.last_train:.3f}  val {val}  "
                f"{(speed or 0) / 1000:.1f}k chars/s")


# ------------------------------------------------------------ entry point
def train(inputs: list[Path], model_path: Path, *, budget: Budget, resume: bool = False, force: bool = False,
          model_overrides: dict[str, Any] | None = None, train_overrides: dict[str, Any] | None = None,
          corpus_options: CorpusOptions = CorpusOptions(), settings: RunSettings = RunSettings(),
          command: str = "") -> TrainResult:
    """Train (or with ``resume``, continue) the model at ``model_path`` on ``inputs``.

    ``model_overrides`` / ``train_overrides`` hold the options the user gave
    (None values are ignored): fields of :class:`ModelConfig` and :class:`TrainOptions`.
    """
    model_overrides = {k: v for k, v in (model_overrides or {}).items() if v is not None}
    train_overrides = {k: v for k, v in (train_overrides or {}).items() if v is not None}
    check_output_path(model_path)
    if not inputs:
        raise SeqdlError("no corpus given: name one or more text files to train on")
    if resume:
        trainer = _resumed(inputs, model_path, budget, model_overrides, train_overrides, corpus_options, settings)
    else:
        if model_path.exists() and not force:
            raise SeqdlError("already exists: continue it with --resume, or pass --force to train a new model over it",
                             str(model_path))
        trainer = _fresh(inputs, model_path, budget.or_default(), model_overrides, train_overrides, corpus_options,
                         settings)
    trainer.model_card = {"seqdl.command": command, "seqdl.trained_on": _trained_on(inputs, trainer.corpus),
                          "val_fraction": corpus_options.val_fraction}
    started_step, started = trainer.step, time.monotonic()
    logger = MetricLogger(metrics_path(model_path), flush_every=500, flush_seconds=60.0, resume=resume,
                          resume_step=trainer.step, metadata={"seqdl.command": command})
    with logger:
        interrupted = trainer.run(logger)
    seconds = time.monotonic() - started
    chars = (trainer.step - started_step) * trainer.options.batch_size * trainer.options.seq_len
    return TrainResult(model_path=model_path, step=trainer.step, best_val=trainer.best_val, best_step=trainer.best_step,
                       train_loss=trainer.last_train, seconds=seconds, chars_per_second=chars / max(seconds, 1e-9),
                       interrupted=interrupted, vocab_size=len(trainer.corpus.vocab), rare=trainer.corpus.rare)


def _trained_on(inputs: list[Path], corpus: Corpus) -> dict[str, Any]:
    return {"files": [{"path": str(p), "bytes": p.stat().st_size} for p in inputs], "characters": len(corpus.data),
            "train_characters": corpus.n_train, "val_characters": len(corpus.val)}


def _fresh(inputs: list[Path], model_path: Path, budget: Budget, model_overrides: dict[str, Any],
           train_overrides: dict[str, Any], corpus_options: CorpusOptions, settings: RunSettings) -> Trainer:
    options = TrainOptions(**train_overrides)
    ModelConfig(vocab_size=1, **model_overrides)  # refuse bad options before the corpus cache is written
    corpus = load_corpus(inputs, model_path, corpus_options, window=options.seq_len, quiet=settings.quiet)
    if corpus.rare:
        warn(f"{len(corpus.rare)} characters seen fewer than {corpus_options.min_count} times are mapped to the "
             f"unknown symbol: {describe_chars(corpus.rare)}")
    config = ModelConfig(vocab_size=len(corpus.vocab), **model_overrides)
    seqdl.manual_seed(options.seed)
    model = CharModel(config)
    trainer = Trainer(corpus, model, options, Cycle(budget, start_step=0), model_path, settings)
    trainer.new_schedule()
    return trainer


def _resumed(inputs: list[Path], model_path: Path, budget: Budget, model_overrides: dict[str, Any],
             train_overrides: dict[str, Any], corpus_options: CorpusOptions, settings: RunSettings) -> Trainer:
    ckpt_path = checkpoint_path(model_path)
    if not ckpt_path.exists():
        raise SeqdlError(f"nothing to resume: no training checkpoint {ckpt_path.name} beside this model "
                         f"(train without --resume first)", str(model_path))
    model, vocab, saved = load_text_model(ckpt_path)
    state = saved.metadata.get(TRAINING_KEY)
    if not isinstance(state, dict) or saved.optimizer_state is None:
        raise SeqdlError("is not a training checkpoint (no optimizer or training state)", str(ckpt_path))
    options = TrainOptions(**state["options"])
    _check_unchanged(asdict(options), train_overrides, ckpt_path)
    _check_unchanged(model.config.to_dict(), model_overrides, ckpt_path)
    corpus = load_corpus(inputs, model_path, corpus_options, vocab=vocab, window=options.seq_len,
                         quiet=settings.quiet)
    if corpus.n_unknown:
        warn(f"{corpus.n_unknown} characters of the corpus are outside the model's vocabulary (scored as unknown)")
    cycle = Cycle.from_dict(state["cycle"])
    continue_cycle = not cycle.finished
    if continue_cycle:
        if budget.given:
            cycle.budget = budget
    else:
        cycle = Cycle(budget.or_default(), start_step=saved.step)
    trainer = Trainer(corpus, model, options, cycle, model_path, settings, step=saved.step,
                      best_val=state["best_val"], best_step=state["best_step"])
    if model_path.exists() and state["best_val"] is not None:
        best, _, _ = load_text_model(model_path)
        trainer.best_model.load_state_dict(best.state_dict())
    trainer.restore(saved, continue_cycle)  # last: building models above draws from the RNG it restores
    return trainer


def _check_unchanged(saved: dict[str, Any], overrides: dict[str, Any], path: Path) -> None:
    """A resumed run keeps its settings: refuse options that contradict the checkpoint."""
    for name, value in overrides.items():
        if name in saved and saved[name] != value:
            raise SeqdlError(f"was trained with --{name.replace('_', '-')} {saved[name]}, not {value}: a resumed run "
                             f"keeps its settings", str(path))
