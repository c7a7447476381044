"""The training loop every front end shares: one cycle of AdamW steps fitted to a budget.

A front end hands the loop a :class:`Task` (a model, how to draw a batch and
the loss of some of its rows, a validation function and what to write into the
saved model) and its :class:`~seqdl.training.Options`; :meth:`Loop.run` then
does, step by step:

1. draw step ``s``'s batch from ``batch_rng(seed, s)`` and take an AdamW step
   (the batch's gradient computed in ``Task.parts`` parts side by side, see
   :mod:`seqdl.training.parallel`; gradients clipped, lr from the warm-up +
   cosine schedule);
2. validate when the plan says so (see :mod:`seqdl.training.plan`) and copy
   the weights that improved into the best model;
3. log a row to ``<model>.metrics.parquet``; every ``checkpoint_minutes``
   write the best model and the training checkpoint;
4. for a time budget, re-fit the cosine to the time left;

until the budget is spent, validation stopped improving (``patience``) or
Ctrl-C, and then saves.

Budgets. A run is a *cycle*: linear warm-up over ``warmup`` of the planned
steps, then cosine decay to ``min_lr_ratio * lr``. A time budget's step count
is estimated from the measured time per step (validation and saving included)
at the 3rd step and refined every 10 steps, the warm-up following it until the
warm-up is over. ``--resume`` after an interrupted cycle continues
it, a budget given again counting from the cycle's start (so the original
command plus ``--resume`` ends where the unbroken run would); ``--resume``
after a finished cycle starts a new one of the given budget, so ``--steps N``
then means N *more* steps (10 more minutes when no budget is given), with the
optimizer state carried over.

Exact resume. Step ``s``'s batch depends on nothing but the seed and ``s``;
dropout draws from seqdl's global generator, whose state the checkpoint stores
with the weights, AdamW and the schedule, so a resumed run always computes the
same steps as an unbroken one. The validation plan, made at the cycle's 3rd
step from measured times, is stored too, and no periodic checkpoint is written
before it: a step-budgeted run killed after a checkpoint, or stopped by Ctrl-C
after its 3rd step, and resumed also validates the same items at the same steps
and keeps the same best model. Two *independent* runs with the same seed train
alike but may plan validation differently (their machines' timings differ);
with ``eval_every`` the plan is fixed (every N steps, the whole validation set)
and they agree on the best model too.
"""
from __future__ import annotations

import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .. import checkpoint
from ..checkpoint import Checkpoint
from ..io import hide_progress, stderr_console
from ..metrics import MetricLogger
from ..nn.module import Module
from ..optim import AdamW, WarmupCosine, clip_grad_norm_
from ..tensor import no_grad
from .options import STATE_FORMAT, TRAINING_KEY, Budget, Options, Settings, training_state
from .outputs import Outputs
from .parallel import DataParallel, PartLoss
from .plan import PLAN_AFTER, Cycle, ValidationPlan, plan_validation

PROVISIONAL_STEPS = 1000  # a time budget's cycle length until the step time is measured


def batch_rng(seed: int, step: int) -> np.random.Generator:
    """The generator that draws step ``step``'s batch: a function of the seed and step only."""
    return np.random.default_rng([seed, step])


@dataclass
class Task:
    """What a front end hands the loop; the loop knows nothing else of text, DNA or images."""

    model: Module
    draw: Callable[[np.random.Generator], tuple[np.ndarray, ...]]  # a step's batch: arrays of rows (first axis)
    loss: PartLoss  # the share of a batch's loss (+ scalars to log) that some of its rows carry, under a model
    validate: Callable[[int], dict[str, float]] | None  # metrics on at most that many validation items
    val_items: int  # items in the whole validation set (0: none)
    items_per_step: int  # items one training step consumes
    unit: str  # what an item is ("chars", "bases", "images"), for the progress bar and metric names
    kind: str  # of the saved model
    config: dict[str, Any]  # of the saved model
    metadata: dict[str, Any]  # vocabulary or classes, model card: written into both files
    keep_best: Mapping[str, str] = field(default_factory=lambda: {"": "val_loss"})  # state-dict prefix -> metric
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # other option groups a resume keeps
    parts: int = 1  # each batch in this many parts, side by side on the free cores (seqdl.training.parallel)


@dataclass
class Best:
    """The lowest value of one validation metric so far, and its step."""

    metric: str
    value: float | None = None
    step: int | None = None


@dataclass
class Result:
    step: int
    steps_run: int  # in this session
    seconds: float  # this session's wall time
    validation_seconds: float  # of which validating
    items_per_second: float
    interrupted: bool
    stopped_early: bool
    train_loss: float | None  # smoothed
    best: dict[str, float | None]  # metric -> lowest value
    best_step: dict[str, int | None]  # metric -> its step
    last_validation: dict[str, float]


class StopRequest:
    """Turns the first Ctrl-C into a request to stop after the current step; a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> "StopRequest":
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: Ctrl-C cannot reach us anyway
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        stderr_console.print("[yellow]stopping after this step and saving a checkpoint "
                             "(Ctrl-C again to abort without saving)[/]")

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Loop:
    """One training session of ``task`` with ``options``: a new run, or with ``saved`` its checkpoint resumed."""

    clock: Callable[[], float] = staticmethod(time.monotonic)  # seconds; every budget and plan is measured by it

    def __init__(self, task: Task, options: Options, outputs: Outputs, budget: Budget,
                 settings: Settings = Settings(), saved: Checkpoint | None = None) -> None:
        self.task, self.options, self.outputs, self.settings = task, options, outputs, settings
        self.model = task.model
        self.parallel = DataParallel(self.model, task.parts)
        self.optimizer = AdamW(self.model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
        self.best = {prefix: Best(metric) for prefix, metric in task.keep_best.items()}
        self.step, self.stalled, self.train_loss = 0, 0, None
        self.last_validation: dict[str, float] = {}
        self.val_size = task.val_items if task.validate is not None else 0
        if saved is None:
            self.cycle = self._new_cycle(budget.or_default())
            self.scheduler = self._new_schedule()
            self.best_state = {name: array.copy() for name, array in self.model.state_dict().items()}
        else:
            self._resume(saved, budget)
        if settings.eval_every is not None:  # at multiples of N from the cycle's start, as an unbroken run would
            done, every = self.step - self.cycle.start_step, settings.eval_every
            self.cycle.plan = ValidationPlan(every, self.val_size, self.cycle.start_step + (done // every + 1) * every)
        self._validated_at: int | None = None
        self._timed_steps = 0
        self._fastest_step = 0.0  # seconds of the fastest training step of this session
        self._seconds_per_item: float | None = None  # validating
        self._reserve = 0.0  # seconds kept back at the end of a time budget for the last validation and save

    # ------------------------------------------------------------ set-up
    def _new_cycle(self, budget: Budget) -> Cycle:
        return Cycle(budget, start_step=self.step)

    def _new_schedule(self) -> WarmupCosine:
        planned = self.cycle.budget.steps or PROVISIONAL_STEPS
        return WarmupCosine(self.optimizer, self.options.warmup_for(planned), planned,
                            min_lr=self.options.lr * self.options.min_lr_ratio)

    def _resume(self, saved: Checkpoint, budget: Budget) -> None:
        """Weights, AdamW, RNG, the best model and the cycle: continued if it was interrupted, else a new one."""
        state = training_state(saved)
        self.step, self.stalled, self.train_loss = int(saved.step or 0), int(state["stalled"]), state["train_loss"]
        self.cycle = Cycle.from_dict(state["cycle"])
        if self.cycle.finished:
            self.cycle, self.stalled = self._new_cycle(budget.or_default()), 0
            self.scheduler = self._new_schedule()
            saved.restore(self.model, self.optimizer)
        else:
            self.scheduler = self._new_schedule()
            saved.restore(self.model, self.optimizer, self.scheduler)
            if budget.given:
                self.cycle.budget = budget
                if budget.steps is not None:
                    self.scheduler.total_steps = budget.steps
        for best in self.best.values():
            best.value, best.step = state["best"].get(best.metric, (None, None))
        validated = any(best.step is not None for best in self.best.values())
        if validated and self.outputs.model.exists():
            self.best_state = checkpoint.load(self.outputs.model, kind=self.task.kind).state_dict
        else:
            self.best_state = {name: array.copy() for name, array in self.model.state_dict().items()}

    # -------------------------------------------------------------- loop
    def run(self) -> Result:
        """Train until the cycle's budget is spent, validation stops improving, or Ctrl-C; save; report."""
        session_step, session_start = self.step, self.clock()
        validation_before = self.cycle.validation_seconds
        cycle_origin = session_start - self.cycle.seconds
        last_save = session_start
        command = {"seqdl.command": self.task.metadata.get("seqdl.command", "")}
        logger = MetricLogger(self.outputs.metrics, flush_every=200, flush_seconds=60.0, resume=self.outputs.resume,
                              resume_step=self.step, metadata=command)
        with logger, StopRequest() as stop, self._progress() as progress:
            bar = progress.add_task("training", total=self._progress_total(), status="")
            while not self._cycle_done() and not stop.requested:
                step_started = self.clock()
                row = self.train_step()
                step_seconds = max(self.clock() - step_started, 1e-9)
                self._time_step(step_seconds)
                row[f"{self.task.unit}_per_second"] = self.task.items_per_step / step_seconds
                self.cycle.seconds = self.clock() - cycle_origin
                self._fit_schedule_to_time()
                if self._validation_due():
                    row.update(self._validate())
                logger.log(self.step, **row)
                # no periodic save before the plan: a resumed run must find the plan the unbroken run used
                if self.cycle.plan is not None and self.clock() - last_save >= self.settings.checkpoint_minutes * 60:
                    self._save_timed()
                    last_save = self.clock()
                self.cycle.seconds = self.clock() - cycle_origin
                progress.update(bar, completed=self._progress_done(), total=self._progress_total(),
                                status=self._status(row))
            interrupted = stop.requested and not self._cycle_done()
            # no extra validation when interrupted: it could change the best model and break exact resume
            if not interrupted and self.val_size and self._validated_at != self.step:
                logger.log(self.step, **self._validate())
            self.cycle.seconds = self.clock() - cycle_origin
            self.cycle.finished = not interrupted
            self.save()
        seconds = self.clock() - session_start
        return Result(
            step=self.step, steps_run=self.step - session_step, seconds=seconds,
            validation_seconds=self.cycle.validation_seconds - validation_before,
            items_per_second=(self.step - session_step) * self.task.items_per_step / max(seconds, 1e-9),
            interrupted=interrupted, stopped_early=self._stalled(), train_loss=self.train_loss,
            best={b.metric: b.value for b in self.best.values()},
            best_step={b.metric: b.step for b in self.best.values()},
            last_validation=self.last_validation)

    def train_step(self) -> dict[str, float]:
        """One AdamW step on step ``self.step``'s batch: the row of metrics to log."""
        lr = self.optimizer.param_groups[0]["lr"]
        self.model.train()
        self.optimizer.zero_grad()
        with self.parallel.scope():
            batch = self.task.draw(batch_rng(self.options.seed, self.step))
            value, scalars = self.parallel.backward(self.task.loss, batch, len(batch[0]))
            grad_norm = clip_grad_norm_(self.model.parameters(), self.options.clip)
            self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.train_loss = value if self.train_loss is None else 0.95 * self.train_loss + 0.05 * value
        return {"train_loss": value, "lr": lr, "grad_norm": grad_norm, **scalars}

    def _cycle_done(self) -> bool:
        budget = self.cycle.budget
        if self._stalled():
            return True
        if budget.steps is not None:
            return self.step - self.cycle.start_step >= budget.steps
        return self.cycle.seconds + self._reserve >= budget.minutes * 60

    def _stalled(self) -> bool:
        return self.options.patience is not None and self.stalled >= self.options.patience

    # -------------------------------------------------------- validation
    def _validation_due(self) -> bool:
        if not self.val_size:
            return False
        done = self.step - self.cycle.start_step
        if self.cycle.plan is None:
            return done == PLAN_AFTER or self._cycle_done()
        return self.step >= self.cycle.plan.next or self._cycle_done()

    def _validate(self) -> dict[str, float]:
        """Validate (a first, small validation times it and plans the rest), keep what improved, return metrics."""
        planning = self.cycle.plan is None
        limit = self._smallest_validation() if planning else self.cycle.plan.limit
        started = self.clock()
        self.model.eval()
        with no_grad():
            metrics = self.task.validate(limit)
        seconds = self.clock() - started
        self.cycle.validation_seconds += seconds
        self._seconds_per_item = seconds / limit
        self._reserve = max(self._reserve, 1.5 * seconds)
        self._validated_at, self.last_validation = self.step, metrics
        self._keep_best(metrics)
        if planning or (self.cycle.budget.minutes is not None and self.settings.eval_every is None):
            self.cycle.plan = self._plan()  # a time budget re-plans from each validation's measured time
        self.cycle.plan.next = self.step + self.cycle.plan.every
        return metrics

    def _smallest_validation(self) -> int:
        return min(self.val_size, self.task.items_per_step)

    def _plan(self) -> ValidationPlan:
        done = max(self.step - self.cycle.start_step, 1)
        if self.cycle.budget.steps is not None:
            planned, seconds = self.cycle.budget.steps, self.cycle.budget.steps * self._fastest_step
        else:
            planned, seconds = max(self.scheduler.total_steps, done), self.cycle.budget.minutes * 60
        return plan_validation(planned, seconds, self._seconds_per_item, self.val_size, self._smallest_validation())

    def _keep_best(self, metrics: dict[str, float]) -> None:
        """Copy each part of the model whose metric fell into the best model; count validations without any."""
        improved = False
        for prefix, best in self.best.items():
            if best.metric not in metrics:
                raise ValueError(f"validation returned no {best.metric!r} (it returned {', '.join(metrics)})")
            value = float(metrics[best.metric])
            if best.value is None or value < best.value:
                best.value, best.step, improved = value, self.step, True
                self.best_state.update({name: array.copy() for name, array in self.model.state_dict().items()
                                        if name.startswith(prefix)})
        self.stalled = 0 if improved else self.stalled + 1

    # ------------------------------------------------------------ timing
    def _time_step(self, seconds: float) -> None:
        """The fastest training step so far (a session's first, with its one-off costs, until a second is timed):
        planning on it errs towards less validation."""
        self._timed_steps += 1
        if self._timed_steps <= 2 or seconds < self._fastest_step:
            self._fastest_step = seconds

    def _fit_schedule_to_time(self) -> None:
        """For a time budget: stretch or shrink the cosine to end when the time runs out (at the 3rd step, then
        every 10), the warm-up following the estimate until it is over."""
        done = self.step - self.cycle.start_step
        if self.cycle.budget.minutes is None or (done != PLAN_AFTER and (done < 10 or done % 10)):
            return
        remaining = max(self.cycle.budget.minutes * 60 - self._reserve - self.cycle.seconds, 0.0)
        total = done + int(remaining / (self.cycle.seconds / done))
        if done == PLAN_AFTER or done < self.scheduler.warmup_steps:
            self.scheduler.warmup_steps = self.options.warmup_for(total)
        self.scheduler.total_steps = max(total, self.scheduler.warmup_steps + 1)

    # ------------------------------------------------------------ saving
    def _save_timed(self) -> None:
        started = self.clock()
        self.save()
        self._reserve = max(self._reserve, 1.5 * (self.clock() - started))

    def save(self) -> None:
        """The best model (the latest without validation), then the training checkpoint; each atomically."""
        card = {**self.task.metadata, "seqdl.metrics": self._card()}
        validated = any(best.step is not None for best in self.best.values())
        weights = self.best_state if validated else self.model.state_dict()
        step = max(b.step for b in self.best.values() if b.step is not None) if validated else self.step
        checkpoint.write_safetensors(self.outputs.model, weights, kind=self.task.kind, config=self.task.config,
                                     metadata=card, entries={checkpoint.STEP: str(step)})
        checkpoint.save(self.outputs.checkpoint, self.model, optimizer=self.optimizer, step=self.step,
                        config=self.task.config, metadata={**card, TRAINING_KEY: self._state()}, kind=self.task.kind,
                        scheduler=self.scheduler)

    def _card(self) -> dict[str, Any]:
        steps = [b.step for b in self.best.values() if b.step is not None]
        return {"step": self.step, "train_loss": self.train_loss, "best_step": max(steps) if steps else None,
                **{b.metric: b.value for b in self.best.values()},
                "best_steps": {b.metric: b.step for b in self.best.values()}}

    def _state(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "options": {"train": asdict(self.options), **self.task.options},
                "cycle": self.cycle.to_dict(), "best": {b.metric: [b.value, b.step] for b in self.best.values()},
                "stalled": self.stalled, "train_loss": self.train_loss}

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

    def _status(self, row: dict[str, float]) -> str:
        validation = "  ".join(f"{b.metric} {self.last_validation[b.metric]:.3f}" for b in self.best.values()
                               if b.metric in self.last_validation)
        rate = row[f"{self.task.unit}_per_second"]
        return (f"step {self.step}  loss {self.train_loss:.3f}  {validation or 'val -'}  "
                f"{rate / 1000:.1f}k {self.task.unit}/s")
