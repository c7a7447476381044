"""Checkpoints: round trips, PyTorch interop, exact resume, and refusal of bad files."""
from __future__ import annotations

import json
import struct
from pathlib import Path

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
    save(tmp_path / "c.safetensors", resumed, optimizer=opt2, scheduler=sched2, step=3)

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


def _header_file(tmp_path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize("name,mutate,message", [
    ("empty", lambda b: b"", r"is not a safetensors file \(only 0 bytes\)"),
    ("truncated", lambda b: b[: len(b) - 40], "is truncated: tensor"),
    ("random", lambda b: bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)),
     r"is not a safetensors model \(it does not start with a safetensors header\)"),
    ("huge header", lambda b: struct.pack("<Q", 2**40) + b[8:], "is not a safetensors model"),
    ("not json", lambda b: struct.pack("<Q", 4) + b"abcd", "header is not JSON"),
    ("trailing bytes", lambda b: b + b"junk", "4 bytes after the last tensor"),
])
def test_corrupt_files_are_refused(tmp_path, name, mutate, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(mutate(_valid_bytes(tmp_path)))
    for read in (load, describe):
        with pytest.raises(CheckpointError, match=message) as info:
            read(path)
        assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


@pytest.mark.parametrize("header,message", [
    ({"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 16]}}, "needs 4000000000000 bytes"),
    ({"w": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 0]}}, "needs"),  # no int64 overflow to 0
    ({"w": {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]}}, "invalid shape"),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": ["0", "16"]}}, "invalid shape"),
    ({"w": {"dtype": "BF16", "shape": [8], "data_offsets": [0, 16]}}, "dtype BF16"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, "not laid out contiguously"),
    ({"w": [1, 2]}, "malformed header entry"),
    ({"__metadata__": {"seqdl.step": 3}}, "malformed __metadata__"),
    ({"__metadata__": {"seqdl.step": "three"}}, "invalid seqdl.step"),
    ({"__metadata__": {"seqdl.config": "{oops"}}, "unreadable seqdl.config"),
    ({"__metadata__": {"seqdl.optimizer": "[]"}}, "malformed seqdl.optimizer"),
    ({"__metadata__": {"seqdl.quantization": '{"bits": 8, "tensors": {"w": [4]}}'}}, "inconsistent seqdl.quantization"),
])
def test_crafted_headers_are_refused_before_allocation(tmp_path, header, message):
    if list(header) == ["__metadata__"]:  # a valid tensor, so only the metadata is wrong
        header = {**header, "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    path = _header_file(tmp_path, header, bytes(16))
    with pytest.raises(CheckpointError, match=message):
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
        with open(args[0], "wb") as handle:
            handle.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr("seqdl.checkpoint._write_file", broken)
    with pytest.raises(OSError, match="No space"):
        save(path, nn.Linear(2, 2))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_checkpoint_files_contain_no_pickle(tmp_path):
    model = Net()
    opt = optim.Adam(model.parameters())
    _train(model, opt, 1)
    save(tmp_path / "c.safetensors", model, optimizer=opt)
    data = (tmp_path / "c.safetensors").read_bytes()
    assert b"\x80\x04\x95" not in data and b"\x80\x05\x95" not in data  # pickle protocol 4/5 frames


def _seqdl_and_torch_models():
    import torch.nn as tnn

    mlp = (lambda m: m.Sequential(m.Linear(4, 8), m.BatchNorm1d(8), m.ReLU(), m.Linear(8, 3)), (5, 4))
    cnn = (lambda m: m.Sequential(m.Conv2d(2, 4, 3), m.BatchNorm2d(4), m.ReLU(), m.Flatten(), m.Linear(36, 2)),
           (3, 2, 5, 5))
    return [(build(nn), build(tnn), shape) for build, shape in (mlp, cnn)]


def test_sequential_batchnorm_models_load_into_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    rng = np.random.default_rng(5)
    for i, (ours, theirs, shape) in enumerate(_seqdl_and_torch_models()):
        for _ in range(3):  # train-mode passes move the running statistics away from their defaults
            ours(Tensor(rng.standard_normal(shape)))
        path = save(tmp_path / f"{i}.safetensors", ours.eval())
        tensors = load_file(str(path))
        assert set(tensors) == set(theirs.state_dict())
        theirs.load_state_dict(tensors)
        x = rng.standard_normal(shape).astype(np.float32)
        with seqdl.no_grad():
            np.testing.assert_allclose(ours(Tensor(x)).data, theirs.eval()(torch.tensor(x)).detach().numpy(),
                                       atol=1e-5)


def test_metadata_round_trips_exactly_and_reserved_keys_are_refused(tmp_path):
    meta = {"seqdl.vocab": "0123", "seqdl.classes": ["a", "b"], "epochs": 5, "seqdl.trained_on": "null"}
    path = save(tmp_path / "m.safetensors", nn.Linear(2, 2), metadata=meta)
    assert load(path).metadata == meta  # the string "0123" stays a string, 5 stays an int
    assert describe(path)["metadata"] == meta
    with pytest.raises(ValueError, match="seqdl.kind are reserved"):
        save(tmp_path / "x.safetensors", nn.Linear(2, 2), metadata={"seqdl.kind": "dna"})
    assert not (tmp_path / "x.safetensors").exists()


def test_training_checkpoint_describe_and_restore_helper(tmp_path):
    seqdl.manual_seed(7)
    model = Net()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train(model, opt, 2)
    path = save(tmp_path / "c.safetensors", model, optimizer=opt, step=2, kind="dna")
    info = describe(path)
    assert info["step"] == 2 and info["has_optimizer_state"] and info["n_tensors"] == len(model.state_dict())
    state = seqdl.get_rng_state()
    seqdl.manual_seed(99)
    other = Net()
    opt2 = optim.SGD(other.parameters(), lr=0.5)
    ckpt = seqdl.checkpoint.restore(path, other, opt2, kind="dna")
    assert ckpt.step == 2 and opt2.param_groups[0]["lr"] == 0.1
    assert seqdl.get_rng_state() == state  # resuming continues the saved random stream
    saved, restored = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert list(saved) == list(restored) == list(range(len(list(model.parameters()))))
    for i in saved:
        np.testing.assert_array_equal(saved[i]["momentum_buffer"], restored[i]["momentum_buffer"])


def test_optimizer_and_schedule_mismatches_are_checkpoint_errors(tmp_path):
    layer = nn.Linear(3, 4)
    opt = optim.Adam(layer.parameters())
    layer(Tensor(np.ones((1, 3)))).sum().backward()
    opt.step()
    path = save(tmp_path / "c.safetensors", layer, optimizer=opt)
    with pytest.raises(CheckpointError, match="holds no learning-rate schedule"):
        load(path).restore(nn.Linear(3, 4), scheduler=optim.StepLR(optim.SGD(layer.parameters()), 2))
    wrong = optim.Adam([nn.Parameter(np.zeros(4, np.float32)), nn.Parameter(np.zeros((3, 4), np.float32))])
    with pytest.raises(CheckpointError, match=r"exp_avg of parameter 0: expected shape \(4,\), got \(4, 3\)"):
        load(path).restore(nn.Linear(3, 4), wrong)
    model_only = save(tmp_path / "m.safetensors", layer)
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        load(model_only).restore(nn.Linear(3, 4), optim.Adam(layer.parameters()))


def test_load_into_a_model_is_the_counterpart_of_save(tmp_path):
    """``seqdl.load(path, model)`` fills the model and returns the checkpoint, as the README shows."""
    seqdl.manual_seed(0)
    model = Net()
    seqdl.save(tmp_path / "net.safetensors", model, kind="text", config={"hidden": 8}, metadata={"seqdl.vocab": "ab"})
    seqdl.manual_seed(1)
    fresh = Net()
    saved = seqdl.load(tmp_path / "net.safetensors", fresh)
    assert saved.config == {"hidden": 8} and saved.kind == "text" and saved.metadata == {"seqdl.vocab": "ab"}
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[name], value, err_msg=name)
    assert seqdl.load(tmp_path / "net.safetensors", Net(), kind="text").step is None
    with pytest.raises(CheckpointError, match="expected a 'dna' model, this is a 'text' model"):
        seqdl.load(tmp_path / "net.safetensors", Net(), kind="dna")


def test_load_into_a_model_that_does_not_fit_is_one_short_line_and_leaves_it_untouched(tmp_path):
    seqdl.save(tmp_path / "net.safetensors", Net())
    wide = nn.Sequential(*[nn.Linear(3, 3) for _ in range(40)])
    with pytest.raises(CheckpointError) as refused:
        seqdl.load(tmp_path / "net.safetensors", wide)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'net.safetensors'}: does not fit this model: state_dict does not match "
                              "Sequential: missing 0.weight, 0.bias, 1.weight, 1.bias, 2.weight and 75 more; "
                              "unexpected")
    assert "\n" not in message and "Linear(" not in message and len(message) < 400
    other = Net()
    other.head = nn.Linear(5, 4)  # the last tensor's shape differs: nothing may have been copied before the check
    before = {name: value.copy() for name, value in other.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"head.weight: expected shape \(4, 5\), got \(3, 5\)"):
        seqdl.load(tmp_path / "net.safetensors", other)
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    with pytest.raises(TypeError, match=r"the kind is a keyword: load\(path, kind=...\)"):
        seqdl.load(tmp_path / "net.safetensors", "text")


def test_readme_core_example_runs_and_prints_what_it_says(tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("## The core in one screen", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    printed = example.rsplit("# ", 1)[1].strip()
    assert capsys.readouterr().out.strip() == printed
