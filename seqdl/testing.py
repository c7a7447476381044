"""Gradient checks: central finite differences, and a side-by-side run against PyTorch.

Both check a function of tensors through a random projection of its outputs,
``sum(out * w)``, so one backward pass tests the whole vector-Jacobian product.
Use them for any new op::

    gradcheck(lambda a, b: a @ b, [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))])
    compare_with_torch(lambda a: a.tanh(), lambda a: a.tanh(), [x])
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .tensor import Tensor, no_grad


def _outputs(result: Any) -> list[Any]:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _projection(outputs: list[Any], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(np.shape(_data(o))) for o in outputs]


def _data(value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def gradcheck(
    fn: Callable[..., Any], inputs: Sequence[np.ndarray], eps: float = 1e-6, atol: float = 1e-6,
    rtol: float = 1e-5, seed: int = 0, wrt: Sequence[int] | None = None,
) -> None:
    """Assert that seqdl's backward of ``fn`` matches central finite differences in float64.

    ``fn`` takes one float64 :class:`Tensor` per input and returns a tensor or a
    tuple of tensors. ``wrt`` limits the check to some inputs (default: all
    floating-point ones); the others are passed as constant tensors.
    """
    arrays = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a) for a in inputs]
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else list(wrt)
    tensors = [Tensor(a, requires_grad=i in wrt, dtype=a.dtype) for i, a in enumerate(arrays)]
    outputs = _outputs(fn(*tensors))
    weights = _projection(outputs, seed)
    loss = sum(((o * w).sum() for o, w in zip(outputs, weights) if o.requires_grad), Tensor(0.0, dtype=np.float64))
    loss.backward()

    def objective() -> float:
        with no_grad():
            outs = _outputs(fn(*[Tensor(a, dtype=a.dtype) for a in arrays]))
        return float(sum((o.data * w).sum() for o, w in zip(outs, weights)))

    for i in wrt:
        numeric = np.zeros_like(arrays[i])
        flat, numeric_flat = arrays[i].reshape(-1), numeric.reshape(-1)
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = objective()
            flat[j] = original - eps
            minus = objective()
            flat[j] = original
            numeric_flat[j] = (plus - minus) / (2 * eps)
        analytic = tensors[i].grad if tensors[i].grad is not None else np.zeros_like(numeric)
        np.testing.assert_allclose(analytic, numeric, atol=atol, rtol=rtol, err_msg=f"gradient of input {i}")


def compare_with_torch(
    seqdl_fn: Callable[..., Any], torch_fn: Callable[..., Any], inputs: Sequence[np.ndarray],
    atol: float = 1e-5, grad_rtol: float = 1e-4, grad_atol: float = 1e-5, seed: int = 0,
    seqdl_params: Sequence[Any] = (), torch_params: Sequence[Any] = (),
) -> None:
    """Run the same float32 inputs through seqdl and PyTorch; assert equal outputs and gradients.

    Gradients are compared for every floating-point input and, pairwise, for
    ``seqdl_params`` / ``torch_params`` (the parameters of two modules holding the
    same weights). Requires torch; tests skip with ``pytest.importorskip("torch")``.
    """
    import torch

    arrays = [np.asarray(a) for a in inputs]
    ours = [Tensor(a, requires_grad=a.dtype.kind == "f", dtype=np.float32 if a.dtype.kind == "f" else a.dtype)
            for a in arrays]
    theirs = [torch.tensor(a.astype(np.float32) if a.dtype.kind == "f" else a, requires_grad=a.dtype.kind == "f")
              for a in arrays]
    our_out, their_out = _outputs(seqdl_fn(*ours)), _outputs(torch_fn(*theirs))
    assert len(our_out) == len(their_out), "seqdl and torch return different numbers of outputs"
    for k, (o, t) in enumerate(zip(our_out, their_out)):
        np.testing.assert_allclose(_data(o), _data(t), atol=atol, rtol=atol, err_msg=f"forward output {k}")
    weights = _projection(our_out, seed)
    differentiable = [(o, t, w) for o, t, w in zip(our_out, their_out, weights) if getattr(t, "requires_grad", False)]
    if not differentiable:
        return
    sum(((o * w.astype(np.float32)).sum() for o, t, w in differentiable), Tensor(0.0)).backward()
    sum((t * torch.tensor(w, dtype=t.dtype)).sum() for o, t, w in differentiable).backward()
    pairs = [(o, t, f"input {i}") for i, (o, t) in enumerate(zip(ours, theirs)) if t.requires_grad]
    pairs += [(o, t, f"parameter {i}") for i, (o, t) in enumerate(zip(seqdl_params, torch_params))]
    for o, t, name in pairs:
        if t.grad is None:
            assert o.grad is None or not np.any(o.grad), f"seqdl has a gradient for {name}, torch has none"
            continue
        assert o.grad is not None, f"seqdl has no gradient for {name}"
        np.testing.assert_allclose(o.grad, t.grad.numpy(), rtol=grad_rtol, atol=grad_atol, err_msg=f"gradient of {name}")
