"""The one training loop of seqdl, and what every training command shares.

- :mod:`.options`: ``--steps``/``--minutes`` budgets, :class:`Options` (what a run learns with, kept on
  ``--resume``), :class:`Settings` (how it reports), and the one check that a resumed run keeps its options;
- :mod:`.outputs`: the files beside a model (``.checkpoint.safetensors``, ``.metrics.parquet``);
- :mod:`.plan`: fitting warm-up and validation to the budget;
- :mod:`.loop`: the loop itself (:class:`Loop`), fed by a front end's :class:`Task`;
- :mod:`.parallel`: a step's batch in parts, each through its own replica of the model, side by side.
"""
from .loop import Loop, Result, StopRequest, Task, batch_rng
from .options import DEFAULT_MINUTES, TRAINING_KEY, Budget, Options, Settings, resolve_options, training_state
from .outputs import Outputs, checkpoint_path, metrics_path, sibling
from ..threads import PARTS
from .parallel import DataParallel

__all__ = ["Loop", "Result", "StopRequest", "Task", "batch_rng", "DEFAULT_MINUTES", "TRAINING_KEY", "Budget",
           "Options", "Settings", "resolve_options", "training_state", "Outputs", "checkpoint_path", "metrics_path",
           "sibling", "PARTS", "DataParallel"]
