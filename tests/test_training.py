"""End to end: the core really learns (the loss falls, the task is solved)."""
from __future__ import annotations

import numpy as np

import seqdl
from seqdl import Tensor, nn
from seqdl.nn import functional as F
from seqdl.optim import SGD, Adam


def test_mlp_learns_xor():
    seqdl.manual_seed(0)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    optimizer = SGD(model.parameters(), lr=0.5, momentum=0.9)
    losses = []
    for _ in range(300):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(Tensor(x)), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.02 < losses[0]
    with seqdl.no_grad():
        assert (model(Tensor(x)).data.argmax(axis=1) == y).all()


def test_small_conv_net_overfits_64_images():
    """64 random 12x12 'images' with random labels: only memorisation gets 100 %."""
    seqdl.manual_seed(1)
    rng = np.random.default_rng(1)
    images = rng.random((64, 1, 12, 12)).astype(np.float32)
    labels = rng.integers(0, 4, 64)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.MaxPool2d(2), nn.GELU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.MaxPool2d(2, ceil_mode=True), nn.GELU(),
        nn.Flatten(), nn.Linear(16 * 3 * 3, 32), nn.GELU(), nn.Linear(32, 4),
    )
    optimizer = Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(Tensor(images)), labels)
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    with seqdl.no_grad():
        accuracy = (model.eval()(Tensor(images)).data.argmax(axis=1) == labels).mean()
    assert accuracy == 1.0
    assert loss.item() < 0.05 * first
