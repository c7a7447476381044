"""Every Tensor op: backward against finite differences (float64) and against PyTorch."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import seqdl
from seqdl import Tensor
from seqdl.testing import compare_with_torch, gradcheck

rng = np.random.default_rng(1234)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def positive(*shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


# (name, seqdl function, torch function, inputs). Shapes include broadcasting and batch size 1.
def _cases() -> list[tuple]:
    idx = np.array([2, 0, 2, 1])
    return [
        ("add_broadcast", lambda a, b: a + b, lambda a, b: a + b, [randn(3, 1, 4), randn(5, 1)]),
        ("sub_broadcast", lambda a, b: a - b, lambda a, b: a - b, [randn(2, 3), randn(3)]),
        ("mul_broadcast", lambda a, b: a * b, lambda a, b: a * b, [randn(1, 4), randn(3, 1)]),
        ("div", lambda a, b: a / b, lambda a, b: a / b, [randn(3, 4), positive(4)]),
        ("rdiv_scalar", lambda a: 2.0 / a, lambda a: 2.0 / a, [positive(3)]),
        ("pow_scalar", lambda a: a**3, lambda a: a**3, [randn(2, 3)]),
        ("pow_tensor", lambda a, b: a**b, lambda a, b: a**b, [positive(2, 3), randn(3)]),
        ("neg", lambda a: -a, lambda a: -a, [randn(4)]),
        ("matmul_2d", lambda a, b: a @ b, lambda a, b: a @ b, [randn(3, 4), randn(4, 2)]),
        ("matmul_batched_broadcast", lambda a, b: a @ b, lambda a, b: a @ b, [randn(2, 1, 3, 4), randn(5, 4, 2)]),
        ("matmul_vec_mat", lambda a, b: a @ b, lambda a, b: a @ b, [randn(4), randn(2, 4, 3)]),
        ("matmul_mat_vec", lambda a, b: a @ b, lambda a, b: a @ b, [randn(3, 4), randn(4)]),
        ("matmul_batch1", lambda a, b: a @ b, lambda a, b: a @ b, [randn(1, 1, 4), randn(1, 4, 1)]),
        ("sum_all", lambda a: a.sum(), lambda a: a.sum(), [randn(3, 4)]),
        ("sum_axis_keepdims", lambda a: a.sum(axis=1, keepdims=True), lambda a: a.sum(dim=1, keepdim=True), [randn(2, 3, 4)]),
        ("sum_axes", lambda a: a.sum(axis=(0, 2)), lambda a: a.sum(dim=(0, 2)), [randn(2, 3, 4)]),
        ("mean_axis", lambda a: a.mean(axis=-1), lambda a: a.mean(dim=-1), [randn(2, 5)]),
        ("max_axis", lambda a: a.max(axis=1), lambda a: a.amax(dim=1), [randn(3, 5)]),
        ("max_keepdims", lambda a: a.max(axis=0, keepdims=True), lambda a: a.amax(dim=0, keepdim=True), [randn(4, 2)]),
        ("min_all", lambda a: a.min(), lambda a: a.amin(), [randn(3, 3)]),
        ("reshape", lambda a: a.reshape(6, 2), lambda a: a.reshape(6, 2), [randn(3, 4)]),
        ("flatten", lambda a: a.flatten(1), lambda a: a.flatten(1), [randn(2, 3, 4)]),
        ("transpose_swap", lambda a: a.transpose(0, 2), lambda a: a.transpose(0, 2), [randn(2, 3, 4)]),
        ("permute", lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), [randn(2, 3, 4)]),
        ("unsqueeze_squeeze", lambda a: a.unsqueeze(1).squeeze(), lambda a: a.unsqueeze(1).squeeze(), [randn(3, 4)]),
        ("getitem_slice", lambda a: a[1:, ::2], lambda a: a[1:, ::2], [randn(3, 5)]),
        ("getitem_int", lambda a: a[1], lambda a: a[1], [randn(3, 5)]),
        ("getitem_int_array_repeats", lambda a: a[idx], lambda a: a[torch_index(idx)], [randn(3, 2)]),
        ("getitem_mixed", lambda a: a[:, idx], lambda a: a[:, torch_index(idx)], [randn(2, 3)]),
        ("concatenate", lambda a, b: seqdl.cat([a, b], axis=1), lambda a, b: torch_mod().cat([a, b], 1), [randn(2, 3), randn(2, 2)]),
        ("stack", lambda a, b: seqdl.stack([a, b], axis=1), lambda a, b: torch_mod().stack([a, b], 1), [randn(2, 3), randn(2, 3)]),
        ("pad", lambda a: seqdl.pad(a, [(1, 0), (2, 1)]), lambda a: torch_mod().nn.functional.pad(a, (2, 1, 1, 0)), [randn(2, 3)]),
        ("where", lambda a, b: seqdl.where(mask, a, b), lambda a, b: torch_mod().where(torch_mod().tensor(mask), a, b), [randn(3, 4), randn(4)]),
        ("exp", lambda a: a.exp(), lambda a: a.exp(), [randn(3, 4)]),
        ("log", lambda a: a.log(), lambda a: a.log(), [positive(3, 4)]),
        ("sqrt", lambda a: a.sqrt(), lambda a: a.sqrt(), [positive(3, 4)]),
        ("tanh", lambda a: a.tanh(), lambda a: a.tanh(), [randn(3, 4)]),
        ("sigmoid", lambda a: a.sigmoid(), lambda a: a.sigmoid(), [randn(3, 4)]),
        ("relu", lambda a: a.relu(), lambda a: a.relu(), [randn(3, 4)]),
        ("gelu_exact", lambda a: a.gelu(), lambda a: torch_mod().nn.functional.gelu(a), [randn(3, 4)]),
        ("gelu_tanh", lambda a: a.gelu("tanh"), lambda a: torch_mod().nn.functional.gelu(a, approximate="tanh"), [randn(3, 4)]),
        ("softmax", lambda a: a.softmax(axis=1), lambda a: a.softmax(dim=1), [randn(2, 5, 3)]),
        ("log_softmax", lambda a: a.log_softmax(axis=-1), lambda a: a.log_softmax(dim=-1), [randn(4, 6)]),
        ("reused_node", lambda a: a * a + a.exp() * a, lambda a: a * a + a.exp() * a, [randn(3)]),
    ]


mask = rng.random((3, 4)) > 0.5


def torch_mod():
    import torch

    return torch


def torch_index(idx: np.ndarray):
    return torch_mod().tensor(idx)


CASES = _cases()


@pytest.mark.parametrize("name,fn,_,inputs", CASES, ids=[c[0] for c in CASES])
def test_backward_matches_finite_differences(name, fn, _, inputs):
    gradcheck(fn, inputs)


@pytest.mark.parametrize("name,fn,torch_fn,inputs", CASES, ids=[c[0] for c in CASES])
def test_matches_torch(name, fn, torch_fn, inputs):
    pytest.importorskip("torch")
    compare_with_torch(fn, torch_fn, inputs)


def test_dropout_mask_scales_and_backward_uses_same_mask():
    seqdl.manual_seed(0)
    x = Tensor(np.ones((200, 50)), requires_grad=True)
    y = seqdl.dropout(x, p=0.3, training=True)
    kept = y.data != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y.data[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)
    assert seqdl.dropout(x, p=0.3, training=False) is x


def test_float32_by_default_and_float64_on_request():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.zeros(3)).dtype == np.float32
    assert Tensor(np.zeros(3), dtype=np.float64).dtype == np.float64
    assert Tensor(np.arange(3)).dtype.kind == "i"
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert (x * 2.5 + 1).dtype == np.float32
    assert (x / np.float64(3.0)).dtype == np.float32


def test_backward_is_iterative_on_a_deep_graph():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 1e-6
    (y * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0])


def test_gradients_accumulate_across_uses_and_calls():
    x = Tensor(np.array([2.0, -1.0]), requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 3)


def test_second_backward_through_freed_graph_raises_and_retain_graph_allows_it():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * np.exp(x.data), rtol=1e-6)
    with pytest.raises(RuntimeError, match="freed"):
        y.backward()


def test_using_a_freed_intermediate_in_a_new_graph_raises():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2
    h.sum().backward()
    with pytest.raises(RuntimeError, match="freed"):
        (h * 3).sum().backward()


def test_no_grad_records_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    with seqdl.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    assert seqdl.is_grad_enabled()


def test_leaf_gradients_are_not_aliased():
    # add's backward hands the same array to both parents; leaves must own their .grad.
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad *= 5
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_detach_cuts_the_graph():
    x = Tensor(np.ones(2), requires_grad=True)
    y = (x.detach() * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, np.ones(2))


def test_clear_errors():
    with pytest.raises(ValueError, match="matmul shape mismatch"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="scalar output"):
        Tensor(np.ones(3), requires_grad=True).exp().backward()
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(ValueError, match="dropout probability"):
        seqdl.dropout(Tensor(np.ones(2)), p=1.5)


shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)


@settings(max_examples=60, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4))
def test_broadcast_gradients_have_input_shapes(shapes_pair):
    (sa, sb), result = shapes_pair.input_shapes, shapes_pair.result_shape
    a = Tensor(np.ones(sa), requires_grad=True)
    b = Tensor(np.full(sb, 2.0), requires_grad=True)
    out = a * b + a / b - b
    assert out.shape == result
    out.sum().backward()
    assert a.grad.shape == sa and b.grad.shape == sb
    # d/da of sum(a*b + a/b - b) = (b + 1/b) summed over broadcast copies.
    copies = np.prod(result) / max(np.prod(sa), 1)
    np.testing.assert_allclose(a.grad, np.full(sa, (2.0 + 0.5) * copies), rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(shapes, st.data())
def test_reductions_keep_numpy_shapes(shape, data):
    ndim = len(shape)
    axis = data.draw(st.none() | st.integers(-ndim, ndim - 1)) if ndim else None
    keepdims = data.draw(st.booleans())
    x = Tensor(np.arange(np.prod(shape), dtype=np.float32).reshape(shape), requires_grad=True)
    for reduce, np_reduce in ((Tensor.sum, np.sum), (Tensor.mean, np.mean), (Tensor.max, np.max)):
        out = reduce(x, axis=axis, keepdims=keepdims)
        assert out.shape == np_reduce(x.data, axis=axis, keepdims=keepdims).shape
        out.sum().backward()
        assert x.grad.shape == shape
        x.grad = None
