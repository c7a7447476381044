"""Convolution and pooling: finite differences, PyTorch parity, output sizes, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqdl import Tensor, nn
from seqdl.nn import conv as C
from seqdl.testing import compare_with_torch, gradcheck

rng = np.random.default_rng(11)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


CONV2D = [
    dict(),
    dict(stride=2),
    dict(padding=1),
    dict(padding=(2, 0), stride=(1, 2)),
    dict(dilation=2, padding=1),
    dict(padding="same"),
]
CONV1D = [dict(), dict(stride=2, padding=1), dict(dilation=2), dict(padding="same")]
POOL2D = [
    dict(kernel_size=2),
    dict(kernel_size=2, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(1, 2)),
]
POOL1D = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)]


@pytest.mark.parametrize("kwargs", CONV2D)
def test_conv2d_gradcheck(kwargs):
    gradcheck(lambda x, w, b: C.conv2d(x, w, b, **kwargs), [randn(2, 2, 5, 6), randn(3, 2, 3, 3), randn(3)])


def test_conv2d_batch1_no_bias_nonsquare_gradcheck():
    gradcheck(lambda x, w: C.conv2d(x, w, stride=(2, 1)), [randn(1, 1, 5, 4), randn(2, 1, 2, 3)])


@pytest.mark.parametrize("kwargs", CONV1D)
def test_conv1d_gradcheck(kwargs):
    gradcheck(lambda x, w, b: C.conv1d(x, w, b, **kwargs), [randn(2, 3, 9), randn(4, 3, 3), randn(4)])


@pytest.mark.parametrize("kwargs", POOL2D)
def test_pool2d_gradcheck(kwargs):
    x = randn(2, 2, 7, 6)
    gradcheck(lambda x: C.max_pool2d(x, **kwargs), [x])
    gradcheck(lambda x: C.avg_pool2d(x, **kwargs), [x])
    gradcheck(lambda x: C.avg_pool2d(x, count_include_pad=False, **kwargs), [x])


@pytest.mark.parametrize("kwargs", POOL1D)
def test_pool1d_gradcheck(kwargs):
    gradcheck(lambda x: C.max_pool1d(x, **kwargs), [randn(2, 3, 9)])
    gradcheck(lambda x: C.avg_pool1d(x, **kwargs), [randn(1, 2, 8)])


@pytest.mark.parametrize("kwargs", CONV2D)
def test_conv2d_module_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Conv2d(3, 4, 3, **kwargs), torch.nn.Conv2d(3, 4, 3, **kwargs)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    compare_with_torch(ours, theirs, [randn(2, 3, 9, 8)], seqdl_params=list(ours.parameters()),
                       torch_params=list(theirs.parameters()))


@pytest.mark.parametrize("kwargs", CONV1D)
def test_conv1d_module_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Conv1d(4, 5, 3, **kwargs), torch.nn.Conv1d(4, 5, 3, **kwargs)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    compare_with_torch(ours, theirs, [randn(3, 4, 12)], seqdl_params=list(ours.parameters()),
                       torch_params=list(theirs.parameters()))


@pytest.mark.parametrize("kwargs", POOL2D)
def test_pool2d_modules_match_torch(kwargs):
    torch = pytest.importorskip("torch")
    x = randn(2, 3, 9, 7)
    compare_with_torch(nn.MaxPool2d(**kwargs), torch.nn.MaxPool2d(**kwargs), [x])
    for include in (True, False):
        compare_with_torch(nn.AvgPool2d(count_include_pad=include, **kwargs),
                           torch.nn.AvgPool2d(count_include_pad=include, **kwargs), [x])


@pytest.mark.parametrize("kwargs", POOL1D)
def test_pool1d_modules_match_torch(kwargs):
    torch = pytest.importorskip("torch")
    x = randn(2, 3, 11)
    compare_with_torch(nn.MaxPool1d(**kwargs), torch.nn.MaxPool1d(**kwargs), [x])
    compare_with_torch(nn.AvgPool1d(**kwargs), torch.nn.AvgPool1d(**kwargs), [x])


def test_letters_cnn_matches_torch():
    """The C++ original's letters network, end to end (with ceil_mode pooling)."""
    pytest.importorskip("torch")
    import benchmarks.cnn as bench

    ours, theirs = bench.build_seqdl(), bench.build_torch()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    compare_with_torch(ours, theirs, [rng.random((4, 1, 28, 28))], atol=2e-5,
                       seqdl_params=list(ours.parameters()), torch_params=list(theirs.parameters()))


def test_module_names_shapes_and_init():
    conv = nn.Conv2d(3, 8, (3, 5))
    assert [(n, p.shape) for n, p in conv.named_parameters()] == [("weight", (8, 3, 3, 5)), ("bias", (8,))]
    bound = 1 / np.sqrt(3 * 3 * 5)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.bias.data).max() <= bound
    assert nn.Conv1d(2, 4, 7, bias=False).bias is None


@settings(max_examples=40, deadline=None)
@given(size=st.integers(3, 12), kernel=st.integers(1, 3), stride=st.integers(1, 3), padding=st.integers(0, 1),
       ceil=st.booleans())
def test_pool_output_size_matches_torch(size, kernel, stride, padding, ceil):
    torch = pytest.importorskip("torch")
    if padding > kernel // 2:
        return
    x = np.zeros((1, 1, size, size), np.float32)
    ours = C.max_pool2d(Tensor(x), kernel, stride, padding, ceil).shape
    theirs = tuple(torch.nn.functional.max_pool2d(torch.tensor(x), kernel, stride, padding, ceil_mode=ceil).shape)
    assert ours == theirs


@settings(max_examples=60, deadline=None)
@given(size=st.integers(3, 9), kernel=st.integers(1, 3), stride=st.integers(1, 3), padding=st.integers(0, 1),
       ceil=st.booleans(), nan=st.booleans(), seed=st.integers(0, 2**16))
def test_max_pool_gradient_goes_where_torchs_does(size, kernel, stride, padding, ceil, nan, seed):
    """Ties (a blank region pools equal values) give a window's gradient to its first maximum, a NaN is the
    maximum, and overlapping windows add up, exactly as in PyTorch."""
    torch = pytest.importorskip("torch")
    if padding > kernel // 2:
        return
    draw = np.random.default_rng(seed)
    x = draw.integers(0, 3, (2, 2, size, size + 1)).astype(np.float32)  # values 0, 1, 2: ties everywhere
    if nan:
        x[draw.integers(0, 2), 0, draw.integers(0, size), draw.integers(0, size + 1)] = np.nan
    ours = Tensor(x, requires_grad=True)
    out = C.max_pool2d(ours, kernel, stride, padding, ceil)
    g = draw.standard_normal(out.shape).astype(np.float32)
    out.backward(g)
    theirs = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.max_pool2d(theirs, kernel, stride, padding, ceil_mode=ceil)
    expected.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(out.data, expected.detach().numpy())
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_bad_input_errors():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="expects 3 input channels, got 2"):
        conv(Tensor(randn(1, 2, 8, 8)))
    with pytest.raises(ValueError, match="4-D input"):
        conv(Tensor(randn(3, 8, 8)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv(Tensor(randn(1, 3, 2, 8)))
    with pytest.raises(ValueError, match="groups=1"):
        nn.Conv2d(4, 4, 3, groups=2)
    with pytest.raises(ValueError, match="stride 1"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")(Tensor(randn(1, 3, 8, 8)))
    with pytest.raises(ValueError, match="positive"):
        nn.MaxPool2d(2, stride=0)(Tensor(randn(1, 1, 4, 4)))


@pytest.mark.parametrize("padding, dilation, bias", [(0, 1, True), (4, 1, True), (12, 3, False), (2, 2, True)])
def test_time_major_conv1d_matches_conv1d(monkeypatch, padding, dilation, bias):
    """The scan's inference convolution on (T, B, C) equals conv1d on (B, C, T), across column blocks (tiny
    blocks here, so a sequence spans many)."""
    monkeypatch.setattr(C, "COLUMN_BYTES", 600)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 40)).astype(np.float32)
    weight = rng.standard_normal((6, 5, 9)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32) if bias else None
    expected = C.conv1d(Tensor(x), Tensor(weight), None if b is None else Tensor(b), 1, padding, dilation).data
    got = C.conv1d_time_major(np.ascontiguousarray(x.transpose(2, 0, 1)), weight, b, padding, dilation)
    np.testing.assert_allclose(got.transpose(1, 2, 0), expected, rtol=1e-5, atol=1e-5)
