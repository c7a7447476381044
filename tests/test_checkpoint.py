"""Checkpoints: round trips, PyTorch interop, exact resume, and refusal of bad files."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import seqdl
from seqdl import CheckpointError, Tensor, nn, optim
from seqdl.checkpoint import describe, load, save
from seqdl.nn import functional as F


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.norm = nn.BatchNorm1d(6)
        self.rnn = nn.GRU(6, 8, batch_first=True, bidirectional=True)
        self.lstm = nn.LSTM(16, 5, num_layers=2)
        self.head = nn.Linear(5, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(self.conv(x)).relu().transpose(1, 2)
        h, _ = self.rnn(h)
        h, _ = self.lstm(h)
        return self.head(h)


def torch_net():
    import torch.nn as tnn

    class TorchNet(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = tnn.Conv1d(4, 6, 3, padding=1)
            self.norm = tnn.BatchNorm1d(6)
            self.rnn = tnn.GRU(6, 8, batch_first=True, bidirectional=True)
            self.lstm = tnn.LSTM(16, 5, num_layers=2)
            self.head = tnn.Linear(5, 3)

        def forward(self, x):
            h = self.norm(self.conv(x)).relu().transpose(1, 2)
            h, _ = self.rnn(h)
            h, _ = self.lstm(h)
            return self.head(h)

    return TorchNet()


X = np.random.default_rng(0).standard_normal((2, 4, 7)).astype(np.float32)


def _train(model: nn.Module, opt, steps: int, sched=None) -> list[float]:
    losses = []
    y = np.arange(2 * 7).reshape(2, 7) % 3
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(Tensor(X)).reshape(-1, 3), y.reshape(-1))
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
    return losses


def test_round_trip_restores_model_and_metadata(tmp_path):
    seqdl.manual_seed(0)
    model = Net()
    path = save(tmp_path / "m.safetensors", model, config={"hidden": 8}, kind="dna",
                metadata={"seqdl.vocab": "ACGT", "seqdl.metrics": {"f1": 0.9}})
    ckpt = load(path, kind="dna")
    assert ckpt.kind == "dna" and ckpt.config == {"hidden": 8} and ckpt.version == seqdl.__version__
    assert ckpt.metadata["seqdl.vocab"] == "ACGT" and ckpt.metadata["seqdl.metrics"] == {"f1": 0.9}
    other = Net()
    ckpt.restore(other)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    info = describe(path)
    assert info["n_parameters"] == model.num_parameters() + 6 + 6 + 1  # + BatchNorm buffers
    assert info["kind"] == "dna" and len(info["sha256"]) == 64


def test_loads_into_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    seqdl.manual_seed(1)
    model = Net().eval()
    save(tmp_path / "m.safetensors", model)
    theirs = torch_net().eval()
    theirs.load_state_dict(load_file(str(tmp_path / "m.safetensors")))
    with seqdl.no_grad():
        ours = model(Tensor(X)).data
    np.testing.assert_allclose(ours, theirs(torch.tensor(X)).detach().numpy(), atol=1e-5)


def test_training_checkpoint_loads_into_pytorch_after_dropping_optimizer_state(tmp_path):
    pytest.importorskip("torch")
    from safetensors.torch import load_file

    model = Net()
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    _train(model, opt, 1)
    save(tmp_path / "c.safetensors", model, optimizer=opt, step=1)
    tensors = load_file(str(tmp_path / "c.safetensors"))
    assert any(k.startswith("optimizer/") for k in tensors)
    torch_net().load_state_dict({k: v for k, v in tensors.items() if not k.startswith("optimizer/")})


def test_resume_reproduces_uninterrupted_training(tmp_path):
    seqdl.manual_seed(2)
    model = Net()
    start = {k: v.copy() for k, v in model.state_dict().items()}
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    sched = optim.WarmupCosine(opt, 2, 8)
    full = _train(model, opt, 8, sched)

    resumed = Net()
    resumed.load_state_dict(start)
    opt2 = optim.AdamW(resumed.parameters(), lr=1e-2)
    sched2 = optim.WarmupCosine(opt2, 2, 8)
    first = _train(resumed, opt2, 3, sched2)
    save(tmp_path / "c.safetensors", resumed, optimizer=opt2, scheduler=sched2, step=3, save_rng=True)

    fresh = Net()
    opt3 = optim.AdamW(fresh.parameters(), lr=1e-2)
    sched3 = optim.WarmupCosine(opt3, 2, 1)
    ckpt = load(tmp_path / "c.safetensors")
    ckpt.restore(fresh, opt3, sched3)
    assert ckpt.step == 3 and ckpt.rng_state is not None
    rest = _train(fresh, opt3, 5, sched3)
    np.testing.assert_array_equal(first + rest, full)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        np.testing.assert_array_equal(a, b)


def test_wrong_architecture_names_the_tensor(tmp_path):
    save(tmp_path / "m.safetensors", nn.Linear(3, 4))
    with pytest.raises(CheckpointError, match=r"weight: expected shape \(5, 3\), got \(4, 3\)"):
        load(tmp_path / "m.safetensors").restore(nn.Linear(3, 5))
    with pytest.raises(CheckpointError, match="missing"):
        load(tmp_path / "m.safetensors").restore(nn.Sequential(nn.Linear(3, 4)))


def test_wrong_kind_is_refused(tmp_path):
    save(tmp_path / "m.safetensors", nn.Linear(2, 2), kind="text")
    with pytest.raises(CheckpointError, match="expected a 'dna' model, this is a 'text' model"):
        load(tmp_path / "m.safetensors", kind="dna")


def _valid_bytes(tmp_path) -> bytes:
    save(tmp_path / "ok.safetensors", nn.Linear(8, 8))
    return (tmp_path / "ok.safetensors").read_bytes()


@pytest.mark.parametrize("name,mutate,message", [
    ("empty", lambda b: b"", "is not a safetensors file"),
    ("truncated", lambda b: b[: len(b) - 40], "inconsistent shape"),
    ("random", lambda b: bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)), "not a valid safetensors"),
    ("huge header", lambda b: struct.pack("<Q", 2**40) + b[8:], "declared header"),
    ("not json", lambda b: struct.pack("<Q", 4) + b"abcd", "not JSON"),
])
def test_corrupt_files_are_refused(tmp_path, name, mutate, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(mutate(_valid_bytes(tmp_path)))
    with pytest.raises(CheckpointError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def test_huge_declared_shape_is_refused_before_allocation(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 16]}}).encode()
    path = tmp_path / "bomb.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    with pytest.raises(CheckpointError, match="inconsistent shape"):
        load(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such model file"):
        load(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="is a directory"):
        load(tmp_path)


def test_failed_save_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save(path, nn.Linear(2, 2))
    before = path.read_bytes()

    def broken(*args, **kwargs):
        with open(args[1], "wb") as handle:
            handle.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr("seqdl.checkpoint.save_file", broken)
    with pytest.raises(OSError, match="No space"):
        save(path, nn.Linear(2, 2))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_checkpoint_files_contain_no_pickle(tmp_path):
    model = Net()
    opt = optim.Adam(model.parameters())
    _train(model, opt, 1)
    save(tmp_path / "c.safetensors", model, optimizer=opt, save_rng=True)
    data = (tmp_path / "c.safetensors").read_bytes()
    assert b"\x80\x04\x95" not in data and b"\x80\x05\x95" not in data  # pickle protocol 4/5 frames
