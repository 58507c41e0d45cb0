"""The recipes' optimizer: Adam on torch's fused kernel, with a short path for each step.

``torch.optim.Adam(fused=True).step()`` spends most of a small network's step in
Python: it collects each group's parameters, gradients and state, sorts them by
device and dtype, and only then calls the one fused kernel (about 200 of 350 µs a
step on MinAtar's Q-network, one thread). :class:`LeanAdam` is that optimizer
with a ``step()`` that hands the kernel the lists straight from its own state:
the same kernel, arguments and state tensors, so the same numbers and the same
``state_dict``. Anything the short path does not cover goes through
``torch.optim.Adam.step`` unchanged.

Examples:
    >>> net = torch.nn.Linear(3, 1)
    >>> opt = make_adam(net.parameters(), 1e-3)
    >>> net(torch.ones(2, 3)).sum().backward()
    >>> opt.step()
    >>> type(opt).__name__, int(opt.state[net.weight]["step"])
    ('LeanAdam', 1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from tdrl._compat import fused_adam_step, unhooked_step

__all__ = ["LeanAdam", "make_adam"]


class LeanAdam(torch.optim.Adam):
    """``torch.optim.Adam`` whose ``step()`` calls the fused kernel on the state it holds.

    The short path runs when every group is plain fused Adam (no AMSGrad, no
    capturable or differentiable mode, no decoupled weight decay, float
    hyperparameters), every parameter has a gradient and a state (from its first
    step), and a group's tensors share one device and dtype (real, not complex).
    Otherwise, and with a closure, the step is ``torch.optim.Adam.step``; step
    hooks run either way.

    Examples:
        >>> a, b = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
        >>> _ = b.load_state_dict(a.state_dict())
        >>> lean = LeanAdam(a.parameters(), lr=0.01, fused=True)
        >>> plain = torch.optim.Adam(b.parameters(), lr=0.01, fused=True)
        >>> for _ in range(3):
        ...     for net, opt in ((a, lean), (b, plain)):
        ...         opt.zero_grad()
        ...         net(torch.ones(5, 4)).pow(2).sum().backward()
        ...         opt.step()
        >>> all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
        True
    """

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One Adam step (see the class docstring for when it takes the short path)."""
        runs = self._lean_runs() if closure is None else None
        if runs is not None and all(fused_adam_step(*args, **kwargs) for args, kwargs in runs):
            return None
        # torch's step, inside the hooks this step already runs in
        return unhooked_step(torch.optim.Adam)(self, closure)

    def _lean_runs(self) -> list[tuple[tuple, dict]] | None:
        """Each group's kernel arguments, or None when any group needs torch's step."""
        runs = []
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            if (not group.get("fused") or group["amsgrad"] or group["capturable"]
                    or group["differentiable"] or group.get("decoupled_weight_decay")
                    or not all(type(v) is float for v in (group["lr"], beta1, beta2))):
                return None
            params = group["params"]
            if not params:
                continue
            grads = [p.grad for p in params]
            states = [self.state.get(p) for p in params]
            if any(g is None for g in grads) or not all(states):
                return None
            first = params[0]
            if first.is_complex() or any(
                    t.dtype != first.dtype or t.device != first.device or t.is_sparse
                    for t in (*params, *grads)):
                return None
            runs.append((
                (params, grads, [s["exp_avg"] for s in states],
                 [s["exp_avg_sq"] for s in states], [s["step"] for s in states]),
                {"lr": group["lr"], "betas": (beta1, beta2), "eps": group["eps"],
                 "weight_decay": group["weight_decay"], "maximize": group["maximize"]},
            ))
        return runs


def make_adam(
    params: Iterable[Any], lr: float, eps: float = 1e-8
) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one for the device (a :class:`LeanAdam`),
    else plain ``torch.optim.Adam``; ``params`` as ``torch.optim`` takes them.

    Examples:
        >>> opt = make_adam(torch.nn.Linear(2, 2).parameters(), 1e-3)
        >>> opt.param_groups[0]["lr"], opt.param_groups[0]["fused"]
        (0.001, True)
    """
    params = list(params)
    try:
        return LeanAdam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/dtype
        return torch.optim.Adam(params, lr=lr, eps=eps)
