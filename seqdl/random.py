"""The one random number generator behind initialisation, dropout and sampling.

A single seeded generator makes a whole run repeatable from one `--seed`, and its
state is plain JSON-able data, so checkpoints can store it and a resumed run
continues the same random stream. A thread may draw from a generator of its own
instead (:func:`local_generator`): the parts of a data-parallel training step
run side by side, and each must draw the same dropout masks whatever the order
the threads happen to run in.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

_generator = np.random.default_rng()
_local = threading.local()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator (like ``torch.manual_seed``) and return it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def generator() -> np.random.Generator:
    """The generator used by layers, dropout and samplers: this thread's own where one is set, else the global one."""
    return getattr(_local, "generator", None) or _generator


@contextmanager
def local_generator(rng: np.random.Generator) -> Iterator[np.random.Generator]:
    """Within the block, this thread draws from ``rng`` instead of the global generator."""
    previous = getattr(_local, "generator", None)
    _local.generator = rng
    try:
        yield rng
    finally:
        _local.generator = previous


def get_rng_state() -> dict[str, Any]:
    """The generator's state as a JSON-serialisable dict."""
    return _generator.bit_generator.state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _generator.bit_generator.state = state
