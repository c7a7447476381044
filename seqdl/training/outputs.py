"""The files of a model being trained: the model, its training checkpoint and its metrics, side by side."""
from __future__ import annotations

from pathlib import Path

from ..errors import SeqdlError
from ..io import check_output_path


def sibling(model_path: Path, suffix: str) -> Path:
    """``shakespeare.safetensors`` -> ``shakespeare<suffix>`` (e.g. ``.checkpoint.safetensors``)."""
    stem = model_path.with_suffix("") if model_path.suffix == ".safetensors" else model_path
    return stem.with_name(stem.name + suffix)


def checkpoint_path(model_path: Path) -> Path:
    return sibling(model_path, ".checkpoint.safetensors")


def metrics_path(model_path: Path) -> Path:
    return sibling(model_path, ".metrics.parquet")


class Outputs:
    """``<model>.safetensors`` (the best model), ``.checkpoint.safetensors`` (to resume) and ``.metrics.parquet``.

    Refuses, before any work: an output directory that does not exist, a new
    run over an existing model without ``force``, and ``resume`` without a
    checkpoint.
    """

    def __init__(self, model_path: Path, *, resume: bool, force: bool) -> None:
        self.model = check_output_path(model_path)
        self.checkpoint = checkpoint_path(self.model)
        self.metrics = metrics_path(self.model)
        self.resume = resume
        if resume and not self.checkpoint.exists():
            raise SeqdlError(f"nothing to resume: no training checkpoint {self.checkpoint.name} beside this model "
                             f"(train without --resume first)", str(self.model))
        if not resume and self.model.exists() and not force:
            raise SeqdlError("already exists: continue it with --resume, or pass --force to train a new model over it",
                             str(self.model))
