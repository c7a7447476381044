"""Character language models in seqdl and PyTorch with the same weights.

    python -m benchmarks.rnn

Embedding(96, 64) -> 2-layer GRU or LSTM (hidden 256) -> Linear(256, 96); batch 64,
sequence 100; one training step = forward, cross-entropy, backward, Adam. Sampling
runs the same model one character at a time (batch 1) with the state carried.
Peak memory is measured for each framework in a fresh process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

import seqdl
from seqdl import nn, optim
from seqdl.nn import functional as F

from .cnn import median_seconds

VOCAB, EMBED, HIDDEN, LAYERS, BATCH, SEQ = 96, 64, 256, 2, 64, 100


class CharModel(nn.Module):
    def __init__(self, cell: str) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, EMBED)
        self.rnn = getattr(nn, cell)(EMBED, HIDDEN, num_layers=LAYERS)
        self.head = nn.Linear(HIDDEN, VOCAB)

    def forward(self, tokens: np.ndarray, state=None):
        out, state = self.rnn(self.embed(tokens), state)
        return self.head(out), state


def torch_model(cell: str):
    import torch

    class TorchCharModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, EMBED)
            self.rnn = getattr(torch.nn, cell)(EMBED, HIDDEN, num_layers=LAYERS)
            self.head = torch.nn.Linear(HIDDEN, VOCAB)

        def forward(self, tokens, state=None):
            out, state = self.rnn(self.embed(tokens), state)
            return self.head(out), state

    return TorchCharModel()


def _pair(cell: str):
    theirs = torch_model(cell)
    ours = CharModel(cell)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _data():
    rng = np.random.default_rng(0)
    return rng.integers(0, VOCAB, (SEQ, BATCH)), rng.integers(0, VOCAB, (SEQ, BATCH))


def _steps(cell: str):
    """Training-step closures for both frameworks."""
    import torch

    ours, theirs = _pair(cell)
    x, y = _data()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    our_opt, their_opt = optim.Adam(ours.parameters(), lr=1e-3), torch.optim.Adam(theirs.parameters(), lr=1e-3)

    def our_step() -> None:
        our_opt.zero_grad()
        logits, _ = ours(x)
        F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1)).backward()
        our_opt.step()

    def their_step() -> None:
        their_opt.zero_grad()
        logits, _ = theirs(tx)
        torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), ty.reshape(-1)).backward()
        their_opt.step()

    return our_step, their_step


def _samplers(cell: str, length: int = 200):
    import torch

    ours, theirs = _pair(cell)
    ours.eval()
    theirs.eval()
    tokens = np.random.default_rng(1).integers(0, VOCAB, length)

    def our_sample() -> None:
        state = None
        with seqdl.no_grad():
            for token in tokens:
                logits, state = ours(np.array([[token]]), state)
                logits.softmax(axis=-1)

    def their_sample() -> None:
        state = None
        with torch.no_grad():
            for token in tokens:
                logits, state = theirs(torch.tensor([[int(token)]]), state)
                logits.softmax(dim=-1)

    return our_sample, their_sample


_MEMORY_PROBE = """
import json, threading, time, psutil, torch
torch.set_num_threads(2)
from benchmarks.rnn import _steps
ours, theirs = _steps({cell!r})
step = ours if {framework!r} == "seqdl" else theirs
step()  # warm-up: optimizer state exists from here on, as in a real run
process = psutil.Process()
base = peak = process.memory_info().rss
running = True
def watch():
    global peak
    while running:
        peak = max(peak, process.memory_info().rss)
        time.sleep(0.0005)
watcher = threading.Thread(target=watch)
watcher.start()
step()
running = False
watcher.join()
print(json.dumps((peak - base) / 2**20))
"""


def peak_memory_mb(framework: str, cell: str = "GRU") -> float:
    """Peak resident-memory growth (MB) during one steady-state training step, in a fresh process."""
    code = _MEMORY_PROBE.format(cell=cell, framework=framework)
    # A fixed mmap threshold stops glibc keeping freed large blocks in the heap, which
    # would otherwise hide part of a step's peak inside the baseline (for either framework).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "SEQDL_KEEP_FREED_MEMORY": "0"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(json.loads(result.stdout.strip().splitlines()[-1]))


def run(repeats: int = 5) -> list[dict]:
    rows = []
    chars = SEQ * BATCH
    for cell in ("GRU", "LSTM"):
        ours, theirs = _steps(cell)
        rows.append({"benchmark": f"{cell} 2x256 train step, batch 64x100", "unit": "chars/s",
                     "seqdl": chars / median_seconds(ours, repeats, 2), "torch": chars / median_seconds(theirs, repeats, 2)})
    for cell in ("GRU", "LSTM"):
        ours, theirs = _samplers(cell)
        rows.append({"benchmark": f"{cell} 2x256 sampling, 1 char/step", "unit": "chars/s",
                     "seqdl": 200 / median_seconds(ours, repeats, 1), "torch": 200 / median_seconds(theirs, repeats, 1)})
    rows.append({"benchmark": "GRU train step peak memory growth", "unit": "MB (lower is better)",
                 "seqdl": peak_memory_mb("seqdl"), "torch": peak_memory_mb("torch")})
    return rows


if __name__ == "__main__":
    import torch

    from seqdl.runtime import keep_freed_memory

    keep_freed_memory()  # for both frameworks: they share this process's allocator
    from .table import format_table

    torch.set_num_threads(2)
    print(format_table(run()))
