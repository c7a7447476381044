"""Data-parallel training steps: one batch's loss in parts, each part through its own replica of the model.

Why not let BLAS use both cores? A recurrent layer's products are small (one
step, a few dozen rows), so OpenBLAS's threads meet at a barrier hundreds of
times a training step, and the compiled gate maths between the products runs on
one core. Next to another program that holds a core, every barrier waits for
it: a textgen step kept 0.29x its idle speed next to two busy loops. Parts of
the batch, each on one BLAS thread, share no barrier: the gate maths runs on
every core too, and under contention each part just runs slower.

The step does not depend on the machine. The task fixes the number of parts
(not the cores free); each part draws its dropout masks from a generator of its
own, seeded from seqdl's global one; the gradients are added in part order. On
one core the parts run one after the other and give the same step.

The replicas share the model's parameter arrays (the optimizer's in-place
updates reach them all) and keep gradients of their own. Models with buffers
(BatchNorm's running statistics) cannot be split: their statistics would be
the parts', not the batch's.
"""
from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Any, Callable, ContextManager

import numpy as np

from .. import random as _random
from ..nn.module import Module
from ..tensor import Tensor
from ..threads import blas_limit, part_threads, side_by_side

PartLoss = Callable[[Module, Any, slice], tuple[Tensor, dict[str, float]]]
"""``loss(model, batch, rows)``: the share of the batch's loss (and of each logged scalar) that the batch's
``rows`` carry, computed through ``model``; the shares of all parts add up to the whole batch's values."""


class DataParallel:
    """Forward and backward of a batch in ``parts`` parts, side by side on ``workers`` threads (default: the
    thread plan's at construction), each part's products on one BLAS thread."""

    def __init__(self, model: Module, parts: int = 1, workers: int | None = None) -> None:
        if parts < 1:
            raise ValueError(f"parts must be positive, not {parts}")
        if parts > 1 and any(True for _ in model.named_buffers()):
            raise ValueError("a model with buffers (BatchNorm) cannot be trained in parts")
        self.model, self.workers = model, part_threads() if workers is None else workers
        self.replicas = [model] + [copy.deepcopy(model) for _ in range(parts - 1)]

    def scope(self) -> ContextManager[None]:
        """The context a whole training step runs in: with parts, every product of the step on one BLAS thread
        (the clipping's and the optimizer's too: a second BLAS thread woken between the parts spins, burning a
        core the parts need)."""
        return blas_limit(1) if len(self.replicas) > 1 else nullcontext()

    def backward(self, loss: PartLoss, batch: Any, size: int) -> tuple[float, dict[str, float]]:
        """Run ``loss`` on every part of ``batch`` (``size`` rows; fewer rows than parts: the batch whole) and
        leave the batch's gradient on the model's parameters; returns the batch's loss and scalars."""
        parts = len(self.replicas)
        if parts == 1 or size < parts:  # the global generator, as a plain step would use it
            value, scalars = loss(self.model, batch, slice(0, size))
            value.backward()
            return float(value.data), scalars
        self._share_weights()
        bounds = np.linspace(0, size, parts + 1).round().astype(int)
        seeds = _random.generator().integers(0, 2 ** 63, parts)

        def run(k: int) -> tuple[float, dict[str, float]]:
            with _random.local_generator(np.random.default_rng(seeds[k])):
                value, scalars = loss(self.replicas[k], batch, slice(bounds[k], bounds[k + 1]))
                value.backward()
            return float(value.data), scalars

        # one BLAS thread per part, however many run at once: products give the same bits on one core or two
        results = side_by_side(run, range(parts), self.workers, blas_each=1)
        self._add_gradients()
        scalars: dict[str, float] = {}
        for _, part in results:
            for key, value in part.items():
                scalars[key] = scalars.get(key, 0.0) + value
        return sum(value for value, _ in results), scalars

    def _share_weights(self) -> None:
        """Point every replica at the model's current parameter arrays (a restore may have replaced them)."""
        params = list(self.model.parameters())
        for replica in self.replicas[1:]:
            replica.train(self.model.training)
            for p, q in zip(params, replica.parameters()):
                q.data, q.grad = p.data, None

    def _add_gradients(self) -> None:
        for replica in self.replicas[1:]:
            for p, q in zip(self.model.parameters(), replica.parameters()):
                if q.grad is not None:
                    p.grad = q.grad if p.grad is None else p.grad + q.grad
