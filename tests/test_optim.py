"""Optimizers and schedules follow PyTorch's update rules exactly."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seqdl import Tensor, nn, optim

rng = np.random.default_rng(3)
START = [rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)]
GRADS = [[rng.standard_normal(a.shape).astype(np.float32) for a in START] for _ in range(10)]


def _run_seqdl(make, steps=10):
    params = [Tensor(a.copy(), requires_grad=True) for a in START]
    opt = make(params)
    for grads in GRADS[:steps]:
        for p, g in zip(params, grads):
            p.grad = g.copy()
        opt.step()
    return params, opt


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
]


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_ten_steps_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    params, _ = _run_seqdl(lambda ps: getattr(optim, name)(ps, **kwargs))
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in START]
    opt = getattr(torch.optim, name)(theirs, **kwargs)
    for grads in GRADS:
        for p, g in zip(theirs, grads):
            p.grad = torch.tensor(g)
        opt.step()
    for ours, t in zip(params, theirs):
        np.testing.assert_allclose(ours.data, t.detach().numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name,kwargs", CONFIGS[1:], ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS[1:])])
def test_state_dict_round_trip_continues_identically(name, kwargs):
    full, _ = _run_seqdl(lambda ps: getattr(optim, name)(ps, **kwargs))
    half, opt = _run_seqdl(lambda ps: getattr(optim, name)(ps, **kwargs), steps=5)
    saved = opt.state_dict()
    resumed = [Tensor(p.data.copy(), requires_grad=True) for p in half]
    opt2 = getattr(optim, name)(resumed, **kwargs)
    opt2.load_state_dict(saved)
    for grads in GRADS[5:]:
        for p, g in zip(resumed, grads):
            p.grad = g.copy()
        opt2.step()
    for a, b in zip(full, resumed):
        np.testing.assert_array_equal(a.data, b.data)


def test_parameters_without_grad_are_skipped():
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = np.ones(2, np.float32)
    opt.step()
    assert np.all(a.data < 1) and np.all(b.data == 1)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    grads = [g * 10 for g in GRADS[0]]
    ours = [Tensor(a, requires_grad=True) for a in START]
    theirs = [torch.tensor(a, requires_grad=True) for a in START]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    for norm_type in (2.0, 1.0, math.inf):
        total = optim.clip_grad_norm_(ours, 1.5, norm_type)
        expected = torch.nn.utils.clip_grad_norm_(theirs, 1.5, norm_type)
        assert total == pytest.approx(float(expected), rel=1e-5)
        for p, t in zip(ours, theirs):
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-5)


def test_schedules_match_torch():
    torch = pytest.importorskip("torch")

    def lrs(sched_ours, sched_theirs, steps=25):
        p = Tensor(np.zeros(1), requires_grad=True)
        t = torch.zeros(1, requires_grad=True)
        o_opt, t_opt = optim.SGD([p], lr=0.5), torch.optim.SGD([t], lr=0.5)
        so, st = sched_ours(o_opt), sched_theirs(t_opt)
        seq = []
        for _ in range(steps):
            seq.append((so.get_last_lr()[0], st.get_last_lr()[0]))
            t_opt.step()
            so.step()
            st.step()
        return np.array(seq)

    S = torch.optim.lr_scheduler
    for seq in (
        lrs(lambda o: optim.StepLR(o, 7, 0.5), lambda o: S.StepLR(o, 7, 0.5)),
        lrs(lambda o: optim.CosineAnnealingLR(o, 20, 0.01), lambda o: S.CosineAnnealingLR(o, 20, 0.01)),
        lrs(lambda o: optim.LambdaLR(o, lambda s: 0.9**s), lambda o: S.LambdaLR(o, lambda s: 0.9**s)),
    ):
        np.testing.assert_allclose(seq[:, 0], seq[:, 1], rtol=1e-6, atol=1e-9)


def test_warmup_cosine_shape_and_resume():
    p = Tensor(np.zeros(1), requires_grad=True)
    opt = optim.AdamW([p], lr=1.0)
    sched = optim.WarmupCosine(opt, warmup_steps=4, total_steps=20, min_lr=0.1)
    seen = []
    for _ in range(25):
        seen.append(sched.get_last_lr()[0])
        assert opt.param_groups[0]["lr"] == seen[-1]  # the optimizer uses what the schedule set
        sched.step()
    assert seen[:5] == [0.0, 0.25, 0.5, 0.75, 1.0]  # linear from 0 to the base lr
    assert seen[12] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way down the cosine
    assert all(a >= b for a, b in zip(seen[4:], seen[5:]))
    assert seen[20] == pytest.approx(0.1) and seen[-1] == pytest.approx(0.1)
    state = json.loads(json.dumps(sched.state_dict()))
    other = optim.WarmupCosine(optim.AdamW([p], lr=1.0), warmup_steps=4, total_steps=1)
    other.load_state_dict(state)
    assert other.get_last_lr() == sched.get_last_lr() and other.total_steps == 20


def test_param_groups_match_torch_and_state_is_json_plus_arrays():
    torch = pytest.importorskip("torch")
    ours = [Tensor(a.copy(), requires_grad=True) for a in START]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in START]
    opt = optim.Adam([{"params": [ours[0]]}, {"params": [ours[1]], "lr": 0.1}], lr=0.01)
    t_opt = torch.optim.Adam([{"params": [theirs[0]]}, {"params": [theirs[1]], "lr": 0.1}], lr=0.01)
    for grads in GRADS:
        for p, t, g in zip(ours, theirs, grads):
            p.grad, t.grad = g.copy(), torch.tensor(g)
        opt.step()
        t_opt.step()
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), atol=1e-6, rtol=0)
    state = opt.state_dict()
    json.dumps(state["param_groups"])
    scalars = {i: {k: v for k, v in s.items() if not isinstance(v, np.ndarray)} for i, s in state["state"].items()}
    assert json.loads(json.dumps(scalars)) == {"0": {"step": 10}, "1": {"step": 10}}


def test_load_state_dict_refuses_a_mismatch():
    _, opt = _run_seqdl(lambda ps: optim.Adam(ps), steps=1)
    saved = opt.state_dict()
    other = optim.Adam([Tensor(np.zeros((3, 4)), requires_grad=True), Tensor(np.zeros(3), requires_grad=True)])
    with pytest.raises(ValueError, match=r"exp_avg of parameter 0: expected shape \(3, 4\), got \(4, 3\)"):
        other.load_state_dict(saved)
    with pytest.raises(ValueError, match="groups have sizes"):
        optim.Adam([Tensor(np.zeros(3), requires_grad=True)]).load_state_dict(saved)


def test_module_parameters_work_directly():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    (model(Tensor(np.ones((1, 3)))).sum()).backward()
    before = model.weight.data.copy()
    opt.step()
    np.testing.assert_allclose(model.weight.data, before - 0.1, rtol=1e-6)
