"""Simple layers, losses and the Module surface: finite differences, PyTorch parity, bad input."""
from __future__ import annotations

import numpy as np
import pytest

import seqdl
from seqdl import Tensor, nn
from seqdl.nn import functional as F
from seqdl.testing import compare_with_torch, gradcheck

rng = np.random.default_rng(7)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


# ------------------------------------------------------------ functional
def test_linear_gradcheck():
    gradcheck(lambda x, w, b: F.linear(x, w, b), [randn(2, 3, 4), randn(5, 4), randn(5)])
    gradcheck(lambda x, w: F.linear(x, w), [randn(1, 4), randn(2, 4)])


def test_embedding_gradcheck_with_repeated_indices():
    idx = np.array([[0, 2, 2], [1, 0, 2]])
    gradcheck(lambda w: F.embedding(idx, w), [randn(4, 3)])


def test_layer_norm_gradcheck():
    gradcheck(lambda x, w, b: F.layer_norm(x, (4,), w, b), [randn(3, 4), randn(4), randn(4)])
    gradcheck(lambda x: F.layer_norm(x, (2, 3)), [randn(2, 2, 3)])


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 6), (2, 3, 4, 5)])
def test_batch_norm_training_gradcheck(shape):
    c = shape[1]
    gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [randn(*shape), randn(c), randn(c)])


def test_batch_norm_training_propagates_nan_to_its_channel_only():
    """The compiled statistics may reorder sums but must not assume finite input (PyTorch's result)."""
    x = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    x[1, 0, 2, 1] = np.nan
    out = F.batch_norm(Tensor(x), np.zeros(2, np.float32), np.ones(2, np.float32), training=True).data
    assert np.isnan(out[:, 0]).all() and np.isfinite(out[:, 1]).all()


def test_batch_norm_eval_gradcheck():
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    gradcheck(lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=False), [randn(4, 3), randn(3), randn(3)])


TARGETS = rng.integers(0, 5, size=(6,))
TARGETS_IGNORE = np.array([1, -100, 3, 0, -100, 4])
TARGETS_3D = rng.integers(0, 4, size=(2, 3))


@pytest.mark.parametrize("kwargs", [
    {}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.1},
])
def test_cross_entropy_gradcheck(kwargs):
    gradcheck(lambda x: F.cross_entropy(x, TARGETS, **kwargs), [randn(6, 5)])


def test_cross_entropy_ignore_index_and_spatial_gradcheck():
    gradcheck(lambda x: F.cross_entropy(x, TARGETS_IGNORE, label_smoothing=0.2), [randn(6, 5)])
    gradcheck(lambda x: F.cross_entropy(x, TARGETS_3D), [randn(2, 4, 3)])


def test_other_losses_gradcheck():
    gradcheck(lambda x: F.nll_loss(x.log_softmax(axis=1), TARGETS_IGNORE), [randn(6, 5)])
    y = rng.random((3, 4))
    gradcheck(lambda x: F.binary_cross_entropy_with_logits(x, y), [randn(3, 4) * 5])
    gradcheck(lambda x: F.binary_cross_entropy_with_logits(x, y, pos_weight=np.full(4, 2.0)), [randn(3, 4)])
    gradcheck(lambda x, t: F.mse_loss(x, t), [randn(3, 2), randn(3, 2)])


def test_losses_match_torch():
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    for kwargs in ({}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.15}):
        compare_with_torch(lambda x: F.cross_entropy(x, TARGETS_IGNORE, **kwargs),
                           lambda x: tF.cross_entropy(x, torch.tensor(TARGETS_IGNORE), **kwargs), [randn(6, 5)])
    compare_with_torch(lambda x: F.cross_entropy(x, TARGETS_3D, label_smoothing=0.1),
                       lambda x: tF.cross_entropy(x, torch.tensor(TARGETS_3D), label_smoothing=0.1), [randn(2, 4, 3)])
    compare_with_torch(lambda x: F.nll_loss(x, TARGETS), lambda x: tF.nll_loss(x, torch.tensor(TARGETS)), [randn(6, 5)])
    y = rng.random((3, 4)).astype(np.float32)
    compare_with_torch(lambda x: F.binary_cross_entropy_with_logits(x, y, pos_weight=np.full(4, 3.0)),
                       lambda x: tF.binary_cross_entropy_with_logits(x, torch.tensor(y), pos_weight=torch.full((4,), 3.0)),
                       [randn(3, 4) * 4])
    compare_with_torch(lambda x, t: F.mse_loss(x, t), lambda x, t: tF.mse_loss(x, t), [randn(3, 2), randn(3, 2)])


def test_cross_entropy_is_stable_for_huge_logits():
    x = Tensor(np.array([[1000.0, -1000.0, 0.0]]), requires_grad=True)
    loss = F.cross_entropy(x, np.array([0]))
    loss.backward()
    assert np.isfinite(loss.item()) and loss.item() < 1e-6
    assert np.all(np.isfinite(x.grad))


def test_loss_bad_targets():
    with pytest.raises(ValueError, match="target shape"):
        F.cross_entropy(Tensor(randn(4, 3)), np.array([0, 1]))
    with pytest.raises(IndexError, match="out of range"):
        F.cross_entropy(Tensor(randn(2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError, match="integers"):
        F.cross_entropy(Tensor(randn(2, 3)), np.array([0.0, 1.0]))


# ---------------------------------------------------------------- modules
def _pair(seqdl_module: nn.Module, torch_module):
    """Copy torch's weights into the seqdl module; both must have identical state_dict names and shapes."""
    theirs = {k: v.detach().numpy() for k, v in torch_module.state_dict().items()}
    ours = seqdl_module.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    seqdl_module.load_state_dict(theirs)
    return list(seqdl_module.parameters()), list(torch_module.parameters())


@pytest.mark.parametrize("train", [True, False])
def test_modules_match_torch(train):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    pairs = [
        (nn.Linear(4, 3), tnn.Linear(4, 3), randn(2, 5, 4)),
        (nn.Linear(4, 3, bias=False), tnn.Linear(4, 3, bias=False), randn(1, 4)),
        (nn.LayerNorm(4), tnn.LayerNorm(4), randn(3, 4)),
        (nn.BatchNorm1d(3), tnn.BatchNorm1d(3), randn(6, 3)),
        (nn.BatchNorm1d(3), tnn.BatchNorm1d(3), randn(4, 3, 5)),
        (nn.BatchNorm2d(2), tnn.BatchNorm2d(2), randn(3, 2, 4, 4)),
        (nn.Sequential(nn.Linear(3, 8), nn.GELU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2), nn.Sigmoid()),
         tnn.Sequential(tnn.Linear(3, 8), tnn.GELU(), tnn.Linear(8, 8), tnn.Tanh(), tnn.Linear(8, 2), tnn.Sigmoid()),
         randn(5, 3)),
        (nn.Sequential(nn.Flatten(), nn.ReLU()), tnn.Sequential(tnn.Flatten(), tnn.ReLU()), randn(2, 3, 4)),
    ]
    for ours, theirs, x in pairs:
        ours.train(train)
        theirs.train(train)
        op, tp = _pair(ours, theirs)
        compare_with_torch(ours, theirs, [x], seqdl_params=op, torch_params=tp)
        for name, buffer in ours.named_buffers():
            np.testing.assert_allclose(buffer, theirs.state_dict()[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Embedding(10, 4), torch.nn.Embedding(10, 4)
    op, tp = _pair(ours, theirs)
    idx = np.array([[1, 2, 2], [9, 0, 1]])
    compare_with_torch(lambda _: ours(idx), lambda _: theirs(torch.tensor(idx)), [np.zeros(1)], seqdl_params=op, torch_params=tp)


def test_default_initialisation_has_torchs_ranges():
    seqdl.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > 0.95 * bound
    assert abs(layer.weight.data.std() - bound / np.sqrt(3)) < 0.01 * bound
    assert layer.weight.dtype == np.float32
    assert abs(nn.Embedding(1000, 50).weight.data.std() - 1.0) < 0.02


def test_seed_makes_initialisation_repeatable():
    seqdl.manual_seed(42)
    a = nn.Linear(5, 5).weight.data.copy()
    seqdl.manual_seed(42)
    np.testing.assert_array_equal(a, nn.Linear(5, 5).weight.data)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.BatchNorm1d(4)])
        self.head = nn.Linear(4, 2, bias=False)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: Tensor) -> Tensor:
        h = self.encoder(x)
        for block in self.blocks:
            h = block(h)
        return self.head(self.drop(h))


def test_module_surface():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["encoder.0.weight", "encoder.0.bias", "blocks.0.weight", "blocks.0.bias",
                     "blocks.1.weight", "blocks.1.bias", "head.weight"]
    assert list(net.state_dict()) == names[:6] + ["blocks.1.running_mean", "blocks.1.running_var",
                                                  "blocks.1.num_batches_tracked", "head.weight"]
    assert net.num_parameters() == 3 * 4 + 4 + 16 + 4 + 4 + 4 + 8
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net(Tensor(randn(5, 3))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    assert "ModuleList" in repr(net) and "Linear(in_features=3" in repr(net)


def test_load_state_dict_checks_names_and_shapes():
    net = Net()
    state = {k: v.copy() for k, v in net.state_dict().items()}
    other = Net()
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.head.weight.data, net.head.weight.data)

    with pytest.raises(ValueError, match="missing head.weight"):
        other.load_state_dict({k: v for k, v in state.items() if k != "head.weight"})
    with pytest.raises(ValueError, match="unexpected extra.weight"):
        other.load_state_dict({**state, "extra.weight": np.zeros(1)})
    bad = dict(state)
    bad["encoder.0.weight"] = np.zeros((4, 5))
    with pytest.raises(ValueError, match=r"encoder.0.weight: expected shape \(4, 3\), got \(4, 5\)"):
        other.load_state_dict(bad)
    missing, unexpected = other.load_state_dict({"head.weight": state["head.weight"], "zzz": np.zeros(1)}, strict=False)
    assert "encoder.0.weight" in missing and unexpected == ["zzz"]


def test_load_state_dict_keeps_parameter_identity():
    layer = nn.Linear(2, 2)
    weight = layer.weight
    layer.load_state_dict({"weight": np.ones((2, 2)), "bias": np.zeros(2)})
    assert layer.weight is weight and layer.weight.dtype == np.float32
    np.testing.assert_array_equal(weight.data, np.ones((2, 2)))


def test_batchnorm_rejects_wrong_channels():
    with pytest.raises(ValueError, match="3 channels"):
        nn.BatchNorm1d(3)(Tensor(randn(4, 5)))


def test_linear_rejects_wrong_features():
    with pytest.raises(ValueError, match="input has 5 features, weight expects 4"):
        nn.Linear(4, 2)(Tensor(randn(3, 5)))
