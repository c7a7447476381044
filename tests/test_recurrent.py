"""GRU and LSTM: backward through time against finite differences and against PyTorch."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import seqdl
from seqdl import Tensor
from seqdl.nn.recurrent import GRU, LSTM, gru_blocks, gru_layer, lstm_layer
from seqdl.testing import compare_with_torch, gradcheck

rng = np.random.default_rng(5)
T, I, H = 4, 3, 5


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape) * 0.7


@pytest.mark.parametrize("batch,reverse,bias", [(2, False, True), (1, True, True), (2, True, False)])
def test_gru_layer_gradcheck(batch, reverse, bias):
    g = 3 * H
    inputs = [randn(T, batch, I), randn(batch, H), randn(g, I), randn(g, H)] + ([randn(g), randn(g)] if bias else [])

    def fn(x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
        out, h_t = gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh, reverse)
        return out, h_t  # a loss on both the outputs and the final state

    gradcheck(fn, inputs)


@pytest.mark.parametrize("batch,reverse,bias", [(2, False, True), (1, True, True), (2, False, False)])
def test_lstm_layer_gradcheck(batch, reverse, bias):
    g = 4 * H
    inputs = [randn(T, batch, I), randn(batch, H), randn(batch, H), randn(g, I), randn(g, H)]
    inputs += [randn(g), randn(g)] if bias else []

    def fn(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None):
        return lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse)

    gradcheck(fn, inputs)


def test_zero_initial_state_gradcheck():
    gradcheck(lambda x, w_ih, w_hh: gru_layer(x, None, w_ih, w_hh, None, None)[0], [randn(3, 2, I), randn(3 * H, I), randn(3 * H, H)])
    gradcheck(lambda x, w_ih, w_hh: lstm_layer(x, None, None, w_ih, w_hh, None, None)[2], [randn(3, 2, I), randn(4 * H, I), randn(4 * H, H)])


CONFIGS = [dict(num_layers=n, bidirectional=b, batch_first=f, bias=bias)
           for n, b, f, bias in itertools.product((1, 2), (False, True), (False, True), (True, False))
           if not (bias is False and n == 1 and b)]


def _pair(cls_name: str, kwargs: dict):
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.nn, cls_name)(I, H, **kwargs)
    ours = {"GRU": GRU, "LSTM": LSTM}[cls_name](I, H, **kwargs)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in state.items()]
    ours.load_state_dict(state)
    return torch, ours, theirs


@pytest.mark.parametrize("kwargs", CONFIGS, ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()))
@pytest.mark.parametrize("with_state", [False, True])
def test_gru_module_matches_torch(kwargs, with_state):
    torch, ours, theirs = _pair("GRU", kwargs)
    d = 2 if kwargs["bidirectional"] else 1
    x = randn(2, T, I) if kwargs["batch_first"] else randn(T, 2, I)
    inputs = [x] + ([randn(kwargs["num_layers"] * d, 2, H)] if with_state else [])
    compare_with_torch(lambda *a: ours(*a), lambda *a: theirs(*a), inputs,
                       seqdl_params=list(ours.parameters()), torch_params=list(theirs.parameters()))


@pytest.mark.parametrize("kwargs", CONFIGS, ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()))
@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_module_matches_torch(kwargs, with_state):
    torch, ours, theirs = _pair("LSTM", kwargs)
    d = 2 if kwargs["bidirectional"] else 1
    x = randn(2, T, I) if kwargs["batch_first"] else randn(T, 2, I)
    states = [randn(kwargs["num_layers"] * d, 2, H), randn(kwargs["num_layers"] * d, 2, H)]

    def run(model, x, *hc):
        out, (h, c) = model(x, tuple(hc) if hc else None)
        return out, h, c

    compare_with_torch(lambda *a: run(ours, *a), lambda *a: run(theirs, *a), [x] + (states if with_state else []),
                       seqdl_params=list(ours.parameters()), torch_params=list(theirs.parameters()))


def test_unbatched_input_matches_torch():
    torch, ours, theirs = _pair("GRU", dict(num_layers=2))
    compare_with_torch(lambda x: ours(x), lambda x: theirs(x), [randn(T, I)])


def test_dropout_between_layers_only_in_training():
    torch, ours, theirs = _pair("LSTM", dict(num_layers=2, dropout=0.5))
    x = Tensor(randn(T, 2, I))
    ours.eval()
    with seqdl.no_grad():
        a, _ = ours(x)
        b, _ = ours(x)
    np.testing.assert_array_equal(a.data, b.data)
    theirs.eval()
    np.testing.assert_allclose(a.data, theirs(torch.tensor(x.data))[0].detach().numpy(), atol=1e-5)
    ours.train()
    seqdl.manual_seed(0)
    c, _ = ours(x)
    assert not np.allclose(a.data, c.data)


def test_stepwise_state_carrying_equals_whole_sequence():
    """Sampling feeds one step at a time with the carried state: it must equal one pass."""
    seqdl.manual_seed(3)
    for model, is_lstm in ((GRU(I, H, num_layers=2), False), (LSTM(I, H, num_layers=2), True)):
        x = randn(6, 1, I).astype(np.float32)
        with seqdl.no_grad():
            whole, _ = model(Tensor(x))
            state, steps = None, []
            for t in range(6):
                out, state = model(Tensor(x[t : t + 1]), state)
                steps.append(out.data)
        np.testing.assert_allclose(np.concatenate(steps), whole.data, atol=1e-6)


def test_initialisation_range_and_dtype():
    model = GRU(10, 64)
    bound = 1 / np.sqrt(64)
    for name, p in model.named_parameters():
        assert p.dtype == np.float32 and np.abs(p.data).max() <= bound, name


def test_bad_shapes_are_reported():
    gru = GRU(I, H, num_layers=2)
    with pytest.raises(ValueError, match="expects input_size 3, got 4"):
        gru(Tensor(randn(T, 2, 4)))
    with pytest.raises(ValueError, match=r"hidden state of shape \(2, 2, 5\), got \(1, 2, 5\)"):
        gru(Tensor(randn(T, 2, I)), Tensor(randn(1, 2, H)))
    with pytest.raises(ValueError, match="2 or 3 dimensions"):
        LSTM(I, H)(Tensor(randn(T, 2, 2, I)))


@pytest.mark.parametrize("reverse", [False, True])
def test_gru_blocks_equal_one_pass(reverse):
    """A long sequence run a block of steps at a time (each block starting from the state the last one left)
    gives the one-pass outputs, block by block, in the order the steps run."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((23, 4, 3)).astype(np.float32)
    gru = GRU(3, 6)
    weights = gru.layer_weights(0, 0)
    with seqdl.no_grad():
        expected = gru_layer(Tensor(x), None, *weights, reverse)[0].data
    firsts = []
    for first, out in gru_blocks(x, *weights, reverse=reverse, block=5):
        firsts.append(first)
        np.testing.assert_allclose(out, expected[first:first + 5], rtol=1e-5, atol=1e-6)
    assert firsts == ([20, 15, 10, 5, 0] if reverse else [0, 5, 10, 15, 20])


def test_kernels_compile_where_no_cache_location_is_writable(monkeypatch):
    """numba refuses ``cache=True`` with a RuntimeError where it finds no writable cache directory (a read-only
    install without a home): the kernels then compile on every run instead of failing to import."""
    import importlib

    import numba

    from seqdl.nn import gates

    real_njit = numba.njit

    def refusing_cache(*args, cache=False, **options):
        if cache:
            raise RuntimeError("cannot cache function 'gru_forward': no locator available for file 'gates.py'")
        return real_njit(*args, **options)

    monkeypatch.setattr(numba, "njit", refusing_cache)
    try:
        fresh = importlib.reload(gates)
        h = np.zeros((2, 3), np.float32)
        rz, hn, n, out = np.empty((2, 6), np.float32), h.copy(), h.copy(), h.copy()
        fresh.gru_forward(np.ones((2, 9), np.float32), np.zeros((2, 9), np.float32), np.zeros(9, np.float32),
                          np.zeros(3, np.float32), h, rz, hn, n, out)
        np.testing.assert_allclose(rz, 1 / (1 + np.exp(-1.0)), rtol=1e-6)
        np.testing.assert_allclose(out, np.tanh(1.0) * (1 - 1 / (1 + np.exp(-1.0))), rtol=1e-5)  # (1 - z) n
    finally:
        monkeypatch.undo()
        importlib.reload(gates)
