"""What a training run is given: its budget, what it learns with (kept on resume) and how it reports (not kept)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..checkpoint import Checkpoint
from ..errors import SeqdlError

DEFAULT_MINUTES = 10.0
TRAINING_KEY = "seqdl.training"  # the checkpoint header entry holding the run's state
STATE_FORMAT = 2  # bumped when that state changes shape; older checkpoints are refused by name


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


@dataclass(frozen=True)
class Options:
    """What a run learns with: AdamW, warm-up + cosine, clipping, seed, early stopping.

    Saved in the checkpoint; a resumed run keeps them. Front ends subclass this
    to change defaults and add their own fields (window length, batch size...).
    """

    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.05  # warm-up as a fraction of the cycle's planned steps
    warmup_steps: int | None = None  # a fixed number of warm-up steps instead of the fraction
    min_lr_ratio: float = 0.1
    clip: float = 1.0
    seed: int = 0
    patience: int | None = None  # end the cycle after this many validations without improvement

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise SeqdlError(f"--lr must be positive, not {self.lr}")
        if not self.clip > 0:
            raise SeqdlError(f"--clip must be positive, not {self.clip}")
        if self.weight_decay < 0:
            raise SeqdlError(f"--weight-decay must be >= 0, not {self.weight_decay}")
        if not 0 <= self.warmup < 1 or (self.warmup_steps is not None and self.warmup_steps < 0):
            raise SeqdlError("the warm-up must be a fraction in [0, 1) of the run, --warmup-steps >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise SeqdlError(f"the minimum lr ratio must be in [0, 1], not {self.min_lr_ratio}")
        if self.patience is not None and self.patience < 1:
            raise SeqdlError(f"--patience must be positive, not {self.patience}")

    def warmup_for(self, planned_steps: int) -> int:
        """Warm-up steps of a cycle planned to last ``planned_steps``."""
        return self.warmup_steps if self.warmup_steps is not None else round(self.warmup * planned_steps)


@dataclass(frozen=True)
class Settings:
    """How a session reports and saves, as opposed to what it learns (may change on resume)."""

    eval_every: int | None = None  # validate every N steps on the whole validation set; None: the loop plans it
    checkpoint_minutes: float = 5.0
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.eval_every is not None and self.eval_every < 1:
            raise SeqdlError(f"--eval-every must be positive, not {self.eval_every}")
        if not self.checkpoint_minutes > 0:
            raise SeqdlError(f"--checkpoint-minutes must be positive, not {self.checkpoint_minutes}")


def training_state(saved: Checkpoint) -> dict[str, Any]:
    """The run's state in a training checkpoint; refuses model files and checkpoints of an older layout."""
    state = saved.metadata.get(TRAINING_KEY)
    if not isinstance(state, dict) or saved.optimizer_state is None:
        raise SeqdlError("is not a training checkpoint (no optimizer or training state)", str(saved.path))
    if state.get("format") != STATE_FORMAT:
        raise SeqdlError("is a training checkpoint of an older seqdl that cannot be resumed: train anew with "
                         "--force", str(saved.path))
    return state


def resolve_options(saved: Checkpoint | None, given: Mapping[str, Mapping[str, Any] | None]
                    ) -> dict[str, dict[str, Any]]:
    """The options of a run, by group (``"train"``, ``"model"``, ``"data"``...).

    ``given`` holds what the user typed, None meaning "not given". A fresh run
    (``saved`` None) gets the given values; a resumed one gets the values its
    checkpoint saved, after refusing any given value that contradicts them.
    """
    given = {group: {k: v for k, v in (values or {}).items() if v is not None} for group, values in given.items()}
    if saved is None:
        return given
    kept = training_state(saved)["options"]
    for group, values in given.items():
        for name, value in values.items():
            old = kept.get(group, {}).get(name, value)
            if old != value:
                raise SeqdlError(f"was trained with --{name.replace('_', '-')} {_shown(old)}, not {_shown(value)}: "
                                 f"a resumed run keeps its settings", str(saved.path))
    return {group: dict(kept.get(group, values)) for group, values in given.items()}


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
