"""The shared training loop on a tiny synthetic task: schedule, best parts, early stopping, options on resume."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import seqdl
from seqdl import Tensor, nn
from seqdl.errors import SeqdlError
from seqdl.nn import functional as F
from seqdl.training import Budget, Loop, Options, Outputs, Settings, Task, metrics_path, resolve_options
from seqdl.training.plan import VALIDATION_SHARE, plan_validation

QUIET = Settings(quiet=True)


class TwoParts(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 1)
        self.b = nn.Linear(4, 1)


def regression_task(model: TwoParts, validate, keep_best: dict[str, str] | None = None) -> Task:
    """Both parts learn y = x . w from batches drawn from the step's generator."""
    w = np.arange(1, 5, dtype=np.float32)[:, None]

    def draw(rng: np.random.Generator) -> tuple[np.ndarray]:
        return (rng.standard_normal((16, 4)).astype(np.float32),)

    def loss(net: TwoParts, batch: tuple[np.ndarray], rows: slice):
        x = batch[0][rows]
        y = x @ w
        share = len(x) / len(batch[0])
        return (F.mse_loss(net.a(Tensor(x)), y) + F.mse_loss(net.b(Tensor(x)), y)) * share, {}

    return Task(model=model, draw=draw, loss=loss, validate=validate, val_items=100, items_per_step=16, unit="rows",
                kind="test", config={}, metadata={"seqdl.note": "synthetic"},
                keep_best=keep_best or {"": "val_loss"})


def scripted(values: dict[str, list[float]], snapshots: list[dict[str, np.ndarray]], model: TwoParts):
    """A validation returning the next scripted value of each metric, remembering the weights it saw."""
    def validate(limit: int) -> dict[str, float]:
        index = len(snapshots)
        snapshots.append({k: v.copy() for k, v in model.state_dict().items()})
        return {name: series[index] for name, series in values.items()}
    return validate


def train(tmp_path: Path, task: Task, options: Options, budget: Budget, settings: Settings = QUIET, *,
          resume: bool = False):
    outputs = Outputs(tmp_path / "m.safetensors", resume=resume, force=True)
    saved = seqdl.load(outputs.checkpoint) if resume else None
    return Loop(task, options, outputs, budget, settings, saved).run()


def test_each_part_is_kept_at_its_own_best_validation(tmp_path):
    seqdl.manual_seed(0)
    model, snapshots = TwoParts(), []
    validate = scripted({"val_a": [3, 1, 2, 2], "val_b": [3, 2, 1, 5]}, snapshots, model)
    task = regression_task(model, validate, keep_best={"a.": "val_a", "b.": "val_b"})
    result = train(tmp_path, task, Options(lr=0.05), Budget(steps=20), Settings(eval_every=5, quiet=True))
    assert result.best == {"val_a": 1, "val_b": 1} and result.best_step == {"val_a": 10, "val_b": 15}
    saved = seqdl.load(tmp_path / "m.safetensors")
    assert saved.step == 15 and saved.optimizer_state is None
    for name, array in saved.state_dict.items():
        expected = snapshots[1] if name.startswith("a.") else snapshots[2]
        assert np.array_equal(array, expected[name]), name
    assert not np.array_equal(snapshots[1]["a.weight"], snapshots[3]["a.weight"])  # the parts really moved on
    card = saved.metadata["seqdl.metrics"]
    assert card["best_steps"] == {"val_a": 10, "val_b": 15} and card["step"] == 20
    assert saved.metadata["seqdl.note"] == "synthetic"


def test_patience_ends_the_cycle_and_resume_starts_a_new_one(tmp_path):
    seqdl.manual_seed(0)
    model = TwoParts()
    task = regression_task(model, scripted({"val_loss": [3, 2, 2.5, 2.6, 0.1, 0.1]}, [], model))
    result = train(tmp_path, task, Options(lr=0.05, patience=2), Budget(steps=100), Settings(eval_every=5, quiet=True))
    assert result.stopped_early and not result.interrupted
    assert result.step == 20 and result.best_step == {"val_loss": 10}
    more = train(tmp_path, task, Options(lr=0.05, patience=2), Budget(steps=5), Settings(eval_every=5, quiet=True),
                 resume=True)
    assert more.step == 25 and more.best == {"val_loss": 0.1}


def test_warmup_is_a_fraction_of_the_planned_steps(tmp_path):
    seqdl.manual_seed(0)
    model = TwoParts()
    train(tmp_path, regression_task(model, None), Options(lr=0.1, warmup=0.1), Budget(steps=40))
    lrs = {r["step"]: r["lr"] for r in pq.read_table(metrics_path(tmp_path / "m.safetensors")).to_pylist()}
    assert [lrs[s] for s in range(1, 6)] == pytest.approx([0, 0.025, 0.05, 0.075, 0.1])
    assert lrs[40] < lrs[20] < lrs[6]


def test_a_time_budget_fits_warmup_and_cosine_to_the_time(tmp_path):
    seqdl.manual_seed(0)
    model = TwoParts()
    result = train(tmp_path, regression_task(model, None), Options(lr=0.1), Budget(minutes=0.03))
    lrs = [r["lr"] for r in pq.read_table(metrics_path(tmp_path / "m.safetensors")).to_pylist()]
    peak = int(np.argmax(lrs))
    assert result.step > 100 and 0.005 * result.step < peak < 0.25 * result.step, (peak, result.step)
    assert lrs[-1] < 0.3 * max(lrs)  # the cosine came (nearly) down by the end of the time


class FakeClock:
    """Simulated seconds: a step and each validated item cost what the test says, whatever the machine does."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("step_seconds,item_seconds", [(0.05, 1e-5), (2.0, 2e-3), (0.1, 1e-2)],
                         ids=["fast-machine", "busy-machine", "dear-validation"])
@pytest.mark.parametrize("time_budget", [False, True], ids=["steps", "minutes"])
def test_validation_takes_at_most_a_tenth_of_any_run(tmp_path, monkeypatch, step_seconds, item_seconds, time_budget):
    clock, validated = FakeClock(), []
    monkeypatch.setattr(Loop, "clock", staticmethod(clock))
    seqdl.manual_seed(0)
    model = TwoParts()
    task = regression_task(model, None)
    train_draw = task.draw

    def draw(rng):
        clock.now += step_seconds * (5 if clock.now == 0 else 1)  # the first step pays one-off costs
        return train_draw(rng)

    def validate(limit: int) -> dict[str, float]:
        clock.now += limit * item_seconds
        validated.append(limit)
        return {"val_loss": 1.0 / (1 + len(validated))}

    task.draw, task.validate, task.val_items = draw, validate, 100_000
    budget = Budget(minutes=150 * step_seconds / 60) if time_budget else Budget(steps=150)
    result = train(tmp_path, task, Options(lr=0.05), budget)
    assert len(validated) >= 2 and result.best_step["val_loss"] == result.step
    assert result.validation_seconds == pytest.approx(sum(validated) * item_seconds)
    assert result.validation_seconds <= 0.1 * result.seconds, (validated, result.seconds)
    assert result.seconds <= 1.1 * 150 * step_seconds  # a time budget is kept


def test_validation_plan_fits_the_share_of_time():
    # 1000 steps of 0.1 s; scoring an item costs 1 ms: 5 s buys 5000 items
    plan = plan_validation(1000, 100.0, 1e-3, size=10_000, smallest=100)
    assert plan.every == 100 and plan.limit == 490
    assert (10 * plan.limit + 100) * 1e-3 <= VALIDATION_SHARE * 100.0 + 1e-9
    # too dear for 10 validations of one batch each: fewer, of one batch
    plan = plan_validation(1000, 100.0, 1e-2, size=10_000, smallest=100)
    assert plan.every == 250 and plan.limit == 100
    # cheap: the whole set, ten times
    assert plan_validation(1000, 100.0, 1e-6, size=10_000, smallest=100).limit == 10_000


def test_resolve_options_fresh_and_resumed(tmp_path):
    assert resolve_options(None, {"train": {"lr": 0.1, "seed": None}, "model": None}) == {"train": {"lr": 0.1},
                                                                                          "model": {}}
    seqdl.manual_seed(0)
    model = TwoParts()
    task = regression_task(model, None)
    task.options = {"model": {"hidden": 4}}
    train(tmp_path, task, Options(lr=0.1, seed=5), Budget(steps=2))
    saved = seqdl.load(tmp_path / "m.checkpoint.safetensors")
    groups = resolve_options(saved, {"train": {"lr": None, "seed": 5}, "model": {"hidden": None}})
    assert groups["train"]["lr"] == 0.1 and groups["model"] == {"hidden": 4}
    with pytest.raises(SeqdlError, match="was trained with --seed 5, not 6: a resumed run keeps its settings"):
        resolve_options(saved, {"train": {"seed": 6}})
    with pytest.raises(SeqdlError, match="is not a training checkpoint"):
        resolve_options(seqdl.load(tmp_path / "m.safetensors"), {"train": {}})


def test_outputs_refuse_overwriting_and_resuming_nothing(tmp_path):
    model = tmp_path / "m.safetensors"
    with pytest.raises(SeqdlError, match="nothing to resume"):
        Outputs(model, resume=True, force=False)
    model.write_bytes(b"")
    with pytest.raises(SeqdlError, match="already exists: continue it with --resume"):
        Outputs(model, resume=False, force=False)
    assert Outputs(model, resume=False, force=True).checkpoint == tmp_path / "m.checkpoint.safetensors"
