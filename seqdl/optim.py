"""Optimizers, gradient clipping and learning-rate schedules, with PyTorch's update rules.

Updates work in place on each parameter's ``.data`` with whole-array NumPy ops
and at most one or two temporaries per parameter, because they run every
training step. ``state_dict()`` holds per-parameter arrays (NumPy) and JSON-able
scalars only, so :mod:`seqdl.checkpoint` stores it in safetensors without pickle.

Schedules follow ``torch.optim.lr_scheduler``: construction applies step 0, so
call ``scheduler.step()`` after each ``optimizer.step()``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np

from .tensor import Tensor


class Optimizer:
    """Holds ``param_groups`` (dicts of hyper-parameters with their ``params``) and per-parameter state.

    ``params`` is an iterable of tensors or of dicts ``{"params": [...], **overrides}``
    (per-group hyper-parameters, as in PyTorch). Schedulers set ``group["lr"]``.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict[str, Any]) -> None:
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if defaults.get("lr", 0.0) < 0:
            raise ValueError(f"learning rate must be >= 0, not {defaults['lr']}")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = [{**defaults, **g, "params": list(g["params"])} for g in groups]
        self.state: dict[int, dict[str, Any]] = {}  # keyed by id(parameter)

    def _parameters(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self) -> None:
        """Drop the gradients (set them to None, as PyTorch does by default)."""
        for p in self._parameters():
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient; the others are skipped."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad, self.state.setdefault(id(p), {}), group)

    def _update(self, p: Tensor, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: array | number}}, "param_groups": [...]}``, parameters as indices.

        Indices count parameters across groups in order, as in PyTorch. The
        arrays are the live buffers (like ``Module.state_dict``): copy them to
        keep a snapshot.
        """
        index = {id(p): i for i, p in enumerate(self._parameters())}
        state = dict(sorted(((index[key], dict(value)) for key, value in self.state.items() if key in index),
                            key=lambda item: item[0]))
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            hyper = {k: v for k, v in group.items() if k != "params"}
            groups.append({**hyper, "params": list(range(start, start + n))})
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and state (copied); indices may be ints or strings (from JSON)."""
        params = self._parameters()
        saved_groups = state_dict["param_groups"]
        if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError(f"saved parameter groups have sizes {[len(g['params']) for g in saved_groups]}, "
                             f"this optimizer's {[len(g['params']) for g in self.param_groups]}")
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k != "params"})
        self.state = {}
        for key, values in state_dict["state"].items():
            i = int(key)
            if not 0 <= i < len(params):
                raise ValueError(f"state for parameter {i}, but this optimizer has {len(params)} parameters")
            self.state[id(params[i])] = {name: _restored(item, params[i], f"{name} of parameter {i}")
                                         for name, item in values.items()}


def _restored(item: Any, p: Tensor, what: str) -> Any:
    """A private float copy of a saved state array, checked against its parameter's shape."""
    if not isinstance(item, np.ndarray):
        return item
    if item.shape != p.shape:
        raise ValueError(f"optimizer state {what}: expected shape {p.shape}, got {item.shape}")
    return item.astype(p.dtype, copy=True)


class SGD(Optimizer):
    """SGD with optional momentum, dampening, Nesterov momentum and L2 weight decay (PyTorch's rule)."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, p: Tensor, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        momentum, wd = group["momentum"], group["weight_decay"]
        d_p = grad
        if wd:
            d_p = p.data * wd
            d_p += grad
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:  # PyTorch starts the buffer at the first gradient, undamped
                buf = state["momentum_buffer"] = np.array(d_p, dtype=p.dtype)
            else:
                buf *= momentum
                buf += d_p if group["dampening"] == 0 else (1 - group["dampening"]) * d_p
            if group["nesterov"]:
                d_p = d_p + momentum * buf
            else:
                d_p = buf
        p.data -= group["lr"] * d_p


class Adam(Optimizer):
    """Adam; ``weight_decay`` is L2 added to the gradient (PyTorch's Adam). See :class:`AdamW`."""

    decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), not {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _update(self, p: Tensor, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        if wd and self.decoupled:
            p.data *= 1 - lr * wd
        elif wd:
            grad = grad + wd * p.data
        state["step"] += 1
        step = state["step"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        scratch = np.multiply(grad, 1 - beta1, dtype=p.dtype)  # the one temporary, reused below
        exp_avg *= beta1
        exp_avg += scratch
        np.multiply(grad, grad, out=scratch)
        scratch *= 1 - beta2
        exp_avg_sq *= beta2
        exp_avg_sq += scratch
        second = exp_avg_sq
        if group["amsgrad"]:
            second = np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        denom = np.sqrt(second, out=scratch)
        denom /= math.sqrt(1 - beta2**step)
        denom += eps
        update = np.divide(exp_avg, denom, out=scratch)
        update *= lr / (1 - beta1**step)
        p.data -= update


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay`` each step."""

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients together so their joint norm is at most ``max_norm``; return the norm before.

    As ``torch.nn.utils.clip_grad_norm_``: the factor is ``max_norm / (norm + 1e-6)``,
    applied only when it is below 1. The norm is accumulated in float64.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.abs(g).max(initial=0.0)) for g in grads)
    elif norm_type == 2:
        total = math.sqrt(sum(float(np.vdot(g, g)) for g in (g.astype(np.float64, copy=False) for g in grads)))
    else:
        total = sum(float(np.sum(np.abs(g, dtype=np.float64) ** norm_type)) for g in grads) ** (1 / norm_type)
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale
    return total


# ---------------------------------------------------------------- schedules
class LRScheduler:
    """Sets each group's ``lr`` to a function of its base lr and the step count ``last_epoch``.

    Subclasses define :meth:`lr_at` in closed form, so a schedule resumes
    exactly from ``last_epoch`` alone.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def lr_at(self, base_lr: float, step: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and set every group's ``lr``."""
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_epoch)

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (a :class:`LambdaLR`'s function is not saved, as in PyTorch)."""
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base_lrs = list(state["base_lrs"])
        self.last_epoch = int(state["last_epoch"]) - 1
        self.step()


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` steps."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        return base_lr * self.gamma ** (step // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Cosine from the base lr down to ``eta_min`` at ``T_max`` steps (PyTorch's closed form)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * step / self.T_max)) / 2


class LambdaLR(LRScheduler):
    """The base lr times ``lr_lambda(step)``."""

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float]) -> None:
        self.lr_lambda = lr_lambda
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        return base_lr * self.lr_lambda(step)


class WarmupCosine(LRScheduler):
    """Linear warm-up from 0 to the base lr over ``warmup_steps``, then cosine down to ``min_lr`` at ``total_steps``.

    The same curve as Hugging Face's ``get_cosine_schedule_with_warmup`` (with a
    floor): step 0 has lr 0, step ``warmup_steps`` the base lr, and the lr stays
    at ``min_lr`` after ``total_steps``. ``total_steps`` may be re-estimated
    during a time-budgeted run (set the attribute): the lr is a pure function of
    the step and these three numbers, which ``state_dict`` records.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> None:
        self.warmup_steps, self.total_steps, self.min_lr = warmup_steps, total_steps, min_lr
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        if step < self.warmup_steps:
            return base_lr * step / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_lr + (base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2

    def state_dict(self) -> dict[str, Any]:
        shape = {"warmup_steps": self.warmup_steps, "total_steps": self.total_steps, "min_lr": self.min_lr}
        return {**super().state_dict(), **shape}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.warmup_steps = int(state["warmup_steps"])
        self.total_steps = int(state["total_steps"])
        self.min_lr = float(state["min_lr"])
        super().load_state_dict(state)
