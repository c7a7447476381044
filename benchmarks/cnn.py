"""The letters CNN of the C++ original, in seqdl and in PyTorch with the same weights.

    python -m benchmarks.cnn

28x28x1 input; conv 3x3 1->32, max-pool 2, GELU; conv 3x3 32->64, max-pool 2 (ceil_mode),
GELU; conv 3x3 64->128, max-pool 2, GELU; flatten 512 -> 64 -> GELU -> 128 -> GELU -> 26.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np

import seqdl
from seqdl import nn, optim
from seqdl.nn import functional as F
from seqdl.threads import in_batches
from vision.letters_model import INFERENCE_BATCH


def build_seqdl() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.MaxPool2d(2), nn.GELU(),
        nn.Conv2d(32, 64, 3), nn.MaxPool2d(2, ceil_mode=True), nn.GELU(),
        nn.Conv2d(64, 128, 3), nn.MaxPool2d(2), nn.GELU(),
        nn.Flatten(), nn.Linear(512, 64), nn.GELU(), nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 26),
    )


def build_torch():
    import torch.nn as tnn

    return tnn.Sequential(
        tnn.Conv2d(1, 32, 3), tnn.MaxPool2d(2), tnn.GELU(),
        tnn.Conv2d(32, 64, 3), tnn.MaxPool2d(2, ceil_mode=True), tnn.GELU(),
        tnn.Conv2d(64, 128, 3), tnn.MaxPool2d(2), tnn.GELU(),
        tnn.Flatten(), tnn.Linear(512, 64), tnn.GELU(), tnn.Linear(64, 128), tnn.GELU(), tnn.Linear(128, 26),
    )


def median_seconds(fn: Callable[[], object], repeats: int, inner: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def run(repeats: int = 5) -> list[dict]:
    import torch

    seqdl.manual_seed(0)
    rng = np.random.default_rng(0)
    theirs = build_torch()
    ours = build_seqdl()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x64 = rng.random((64, 1, 28, 28), dtype=np.float32)
    y64 = rng.integers(0, 26, 64)
    x256 = rng.random((256, 1, 28, 28), dtype=np.float32)
    t_x64, t_y64, t_x256 = torch.from_numpy(x64), torch.from_numpy(y64), torch.from_numpy(x256)

    our_opt = optim.Adam(ours.parameters(), lr=1e-3)
    their_opt = torch.optim.Adam(theirs.parameters(), lr=1e-3)

    def our_step() -> None:
        our_opt.zero_grad()
        F.cross_entropy(ours(seqdl.Tensor(x64)), y64).backward()
        our_opt.step()

    def their_step() -> None:
        their_opt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(t_x64), t_y64).backward()
        their_opt.step()

    def our_infer() -> None:   # as seqdl's OCR classifies: sub-batches of 32 crops on the cores BLAS may use
        out = np.empty((len(x256), 26), np.float32)

        def run(start: int, stop: int) -> None:
            out[start:stop] = ours(seqdl.Tensor(x256[start:stop])).data

        with seqdl.no_grad():
            in_batches(run, len(x256), INFERENCE_BATCH)

    def their_infer() -> None:
        with torch.no_grad():
            theirs(t_x256)

    ours.train()
    theirs.train()
    train = (64 / median_seconds(our_step, repeats, 5), 64 / median_seconds(their_step, repeats, 5))
    ours.eval()
    theirs.eval()
    infer = (256 / median_seconds(our_infer, repeats, 3), 256 / median_seconds(their_infer, repeats, 3))
    return [
        {"benchmark": "letters CNN train step, batch 64", "unit": "images/s", "seqdl": train[0], "torch": train[1]},
        {"benchmark": "letters CNN inference, batch 256", "unit": "images/s", "seqdl": infer[0], "torch": infer[1]},
    ]


if __name__ == "__main__":
    import torch

    from seqdl.runtime import keep_freed_memory

    keep_freed_memory()  # for both frameworks: they share this process's allocator
    from .table import format_table

    torch.set_num_threads(2)
    print(format_table(run()))
