"""Fitting a cycle to its budget: how long it runs, and how often and how much it validates.

Validation is planned from measured costs so that it takes about
``VALIDATION_SHARE`` of a cycle (at most 10 %) on any machine: with the step
time and the time per validated item known, the loop validates about
``VALIDATIONS`` times, each on as many items as that share pays for; when even
that is too dear, fewer times, never on fewer items than one training batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .options import Budget

VALIDATION_SHARE = 0.05  # of a cycle's time; half the 10 % limit, as the estimates come from few measurements
VALIDATIONS = 10  # per cycle, when affordable
PLAN_AFTER = 3  # steps timed before the first (small) validation and the plan


@dataclass
class ValidationPlan:
    """Validate at step ``next``, then every ``every`` steps, on at most ``limit`` items."""

    every: int
    limit: int
    next: int = 0


@dataclass
class Cycle:
    """Where training stands in the current warm-up + cosine cycle (stored in the checkpoint)."""

    budget: Budget
    start_step: int
    seconds: float = 0.0  # wall time spent in this cycle so far
    validation_seconds: float = 0.0  # of which validating
    finished: bool = False
    plan: ValidationPlan | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget.to_dict(), "start_step": self.start_step, "seconds": self.seconds,
                "validation_seconds": self.validation_seconds, "finished": self.finished,
                "plan": None if self.plan is None else vars(self.plan)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Cycle":
        plan = values["plan"]
        return cls(Budget(**values["budget"]), int(values["start_step"]), float(values["seconds"]),
                   float(values["validation_seconds"]), bool(values["finished"]),
                   None if plan is None else ValidationPlan(int(plan["every"]), int(plan["limit"]), int(plan["next"])))


def plan_validation(planned_steps: int, cycle_seconds: float, seconds_per_item: float, size: int,
                    smallest: int) -> ValidationPlan:
    """Cadence and size of validation for a cycle of ``planned_steps`` lasting ``cycle_seconds``.

    ``size``: items in the whole validation set; ``smallest``: the fewest items
    a validation scores (one training batch, or the whole set if smaller), as
    the first, timing validation did. Validating every ``ceil(planned / count)``
    steps and at the end makes at most ``count`` validations.
    """
    affordable = VALIDATION_SHARE * cycle_seconds / max(seconds_per_item, 1e-12) - smallest  # items, first one paid
    count = max(1, min(VALIDATIONS, planned_steps, int(affordable // smallest)))
    limit = min(size, max(smallest, int(affordable / count)))
    return ValidationPlan(every=math.ceil(planned_steps / count), limit=limit)
