"""What every training command shares: budgets, Ctrl-C handling, the files beside a model, per-step randomness."""
from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SeqdlError
from .io import stderr_console

DEFAULT_MINUTES = 10.0


@dataclass(frozen=True)
class Budget:
    """How long one cycle trains: ``steps`` or ``minutes`` (at most one)."""

    steps: int | None = None
    minutes: float | None = None

    def __post_init__(self) -> None:
        if self.steps is not None and self.minutes is not None:
            raise SeqdlError("give --steps or --minutes, not both")
        if self.steps is not None and self.steps < 1:
            raise SeqdlError(f"--steps must be positive, not {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise SeqdlError(f"--minutes must be positive, not {self.minutes}")

    @property
    def given(self) -> bool:
        return self.steps is not None or self.minutes is not None

    def or_default(self) -> "Budget":
        return self if self.given else Budget(minutes=DEFAULT_MINUTES)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "minutes": self.minutes}


def sibling(model_path: Path, suffix: str) -> Path:
    """``shakespeare.safetensors`` -> ``shakespeare<suffix>`` (e.g. ``.checkpoint.safetensors``)."""
    stem = model_path.with_suffix("") if model_path.suffix == ".safetensors" else model_path
    return stem.with_name(stem.name + suffix)


def checkpoint_path(model_path: Path) -> Path:
    return sibling(model_path, ".checkpoint.safetensors")


def metrics_path(model_path: Path) -> Path:
    return sibling(model_path, ".metrics.parquet")


def batch_rng(seed: int, step: int) -> np.random.Generator:
    """The generator that draws step ``step``'s windows: a function of the seed and step only."""
    return np.random.default_rng([seed, step])


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
