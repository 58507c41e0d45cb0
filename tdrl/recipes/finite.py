"""Non-finite values in a run: vectorised checks for the hot paths, a full scan for checkpoints.

The recipes check what they produce once per batch (a rollout, a training
phase) with :func:`check_finite`: one ``isfinite`` reduction per tensor and
one device sync for all of them. Before a checkpoint is written, the run loop
scans the whole algorithm state with :func:`first_non_finite` (weights,
optimizer, replay buffer, running statistics, episode stats), so the last good
checkpoint never holds a NaN or inf. When a library check fires instead (a
distribution refusing NaN parameters, a Q-value module refusing NaN action
values), :func:`diagnose` turns it into the run's documented failure.

Examples:
    >>> import torch
    >>> first_non_finite({"model": {"w": torch.ones(2)}, "stats": {"recent": [1.0, float("inf")]}})
    "stats['recent'][1]"
    >>> check_finite(64, loss=torch.tensor([0.5, float("nan")]))
    Traceback (most recent call last):
    ...
    tdrl.recipes.config.NonFiniteError: non-finite loss (nan) at step 64
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from tdrl.recipes.config import NonFiniteError

__all__ = ["STATE_NAMES", "check_finite", "check_params", "check_state", "diagnose",
           "first_non_finite", "float_tensors"]

# What the top-level keys of an algorithm's state_dict are, in an error message.
STATE_NAMES = {
    "model": "weights",
    "target": "target network weights",
    "optimizer": "optimizer state",
    "log_alpha": "temperature (log alpha)",
    "egreedy": "exploration state",
    "buffer": "replay buffer",
    "obs": "current observation",
    "stats": "episode statistics",
    "nstep_pending": "pending n-step transitions",
}
# Library checks that refuse NaN/inf inputs (distributions, Q-value modules, torch's own
# distribution validation): their ValueError names the values.
_NON_FINITE_TEXT = re.compile(r"\bnan\b|\binf\b|infinite|not finite|non-finite", re.IGNORECASE)


def _bad_tensor(t: torch.Tensor) -> bool:
    return t.is_floating_point() or t.is_complex()


def first_non_finite(obj: Any, path: str = "") -> str | None:
    """The path of the first NaN/inf in a nested state (dicts, sequences, tensors, arrays).

    Each tensor or array costs one reduction; objects of other types (a pickled
    env, RNG states) are skipped.

    Examples:
        >>> first_non_finite({"a": [np.zeros(2), (1, 2.0)]}) is None
        True
        >>> first_non_finite({"a": [np.zeros(2), torch.tensor([1.0, float("nan")])]})
        'a[1]'
    """
    if isinstance(obj, torch.Tensor):
        if _bad_tensor(obj) and obj.numel() and not bool(torch.isfinite(obj).all()):
            return path or "value"
        return None
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc" and obj.size and not np.isfinite(obj).all():
            return path or "value"
        if obj.dtype == object:
            return first_non_finite(list(obj.reshape(-1)), path)
        return None
    if isinstance(obj, float | np.floating):
        return None if math.isfinite(obj) else (path or "value")
    if isinstance(obj, Mapping) or hasattr(obj, "items") and hasattr(obj, "keys"):
        try:
            items = list(obj.items())
        except Exception:  # noqa: BLE001 - not a mapping after all
            return None
        for key, value in items:
            found = first_non_finite(value, f"{path}[{key!r}]" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(obj, list | tuple | deque):
        for i, value in enumerate(obj):
            found = first_non_finite(value, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _describe(path: str) -> str:
    """``"model['w']"`` -> ``"weights (model['w'])"``."""
    top = re.split(r"[\[.]", path, maxsplit=1)[0]
    name = STATE_NAMES.get(top)
    return f"{name} ({path})" if name else path


def check_state(state: Mapping[str, Any], step: int, where: str = "") -> None:
    """Raise :class:`NonFiniteError` naming the first NaN/inf of an algorithm's ``state_dict``.

    Examples:
        >>> check_state({"model": {"w": torch.ones(1)}}, step=8)
        >>> check_state({"buffer": {"storage": {"reward": torch.tensor([float("inf")])}}}, 8)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.NonFiniteError: non-finite replay buffer (buffer['storage']['reward']) at step 8
    """
    found = first_non_finite(state)
    if found is not None:
        raise NonFiniteError(_describe(found) + where, step)


def check_finite(step: int, **values: torch.Tensor | np.ndarray | None) -> None:
    """Raise :class:`NonFiniteError` naming the first of ``values`` holding a NaN or inf.

    One ``isfinite`` reduction per tensor and a single device sync for all of
    them: call it once per batch, not per element. ``None`` values are skipped;
    numpy arrays are checked on the CPU.

    Examples:
        >>> check_finite(8, loss=torch.tensor(0.5), gradient_norm=torch.ones(3))
        >>> check_finite(8, reward=np.array([1.0, -np.inf]))
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.NonFiniteError: non-finite reward (-inf) at step 8
    """
    tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor) and v.numel()}
    for key, value in values.items():
        if isinstance(value, np.ndarray) and not np.isfinite(value).all():
            raise NonFiniteError(f"{key} ({_first_bad(torch.as_tensor(value))})", step)
    if not tensors:
        return
    flags = torch.stack([t.isfinite().all() for t in tensors.values()])
    if bool(flags.all()):
        return
    for key, value in tensors.items():
        if not bool(value.isfinite().all()):
            raise NonFiniteError(f"{key} ({_first_bad(value)})", step)


def float_tensors(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The non-empty floating-point parameters and buffers of ``module``, by name, detached:
    what :func:`check_params` checks (build the list once for a hot loop).

    Examples:
        >>> [name for name, _ in float_tensors(torch.nn.Linear(2, 1))]
        ['weight', 'bias']
    """
    return [(k, t.detach()) for k, t in (*module.named_parameters(), *module.named_buffers())
            if _bad_tensor(t) and t.numel()]


def check_params(module: torch.nn.Module | list[tuple[str, torch.Tensor]], step: int,
                 what: str = "weights") -> None:
    """Raise :class:`NonFiniteError` naming the first parameter or buffer of ``module`` with a
    NaN/inf; one reduction per tensor and a single device sync. ``module`` may also be its
    :func:`float_tensors` list, built once (the same tensors: weights are updated in place).

    Examples:
        >>> net = torch.nn.Linear(2, 1)
        >>> with torch.no_grad():  # finite weights whose sum overflows float32: no error
        ...     _ = net.weight.fill_(3e38)
        >>> check_params(net, step=4)
        >>> with torch.no_grad():
        ...     _ = net.bias.fill_(float("inf"))
        >>> check_params(float_tensors(net), step=4)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.NonFiniteError: non-finite weights (bias) at step 4
    """
    named = float_tensors(module) if isinstance(module, torch.nn.Module) else module
    # a sum per tensor screens (NaN/inf in, NaN/inf out; 10x cheaper than isfinite().all());
    # only a sum that is not finite (a NaN/inf, or finite values summing past float range)
    # gets the exact per-tensor check
    if not named or bool(torch.stack([t.sum() for _, t in named]).isfinite().all()):
        return
    for key, value in named:
        if not bool(value.isfinite().all()):
            raise NonFiniteError(f"{what} ({key})", step)


def _first_bad(t: torch.Tensor) -> str:
    bad = t[~t.isfinite()]
    return str(bad.reshape(-1)[0].item()) if bad.numel() else "?"


def diagnose(err: BaseException, state: Mapping[str, Any] | None, step: int) -> NonFiniteError | None:
    """The :class:`NonFiniteError` behind an exception raised inside a training iteration.

    ``state`` is the algorithm's ``state_dict()`` (``None`` if unavailable). A
    NaN/inf there is named first (weights, optimizer...); otherwise a
    ``ValueError`` from a check refusing NaN/inf parameters (a distribution, a
    Q-value module) becomes "non-finite distribution parameters or network
    output" with that check's message. Anything else is a genuine bug: ``None``
    (the caller re-raises it).

    Examples:
        >>> diagnose(ValueError("TanhNormal: scale must be > 0 (and not NaN)"), {}, 32)
        NonFiniteError('non-finite distribution parameters or network output (TanhNormal: scale must be > 0 (and not NaN)) at step 32')
        >>> diagnose(KeyError("x"), {}, 32) is None
        True
    """
    if state is not None:
        found = first_non_finite(state)
        if found is not None:
            return NonFiniteError(_describe(found), step)
    if isinstance(err, ValueError | RuntimeError) and _NON_FINITE_TEXT.search(str(err)):
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return NonFiniteError(f"distribution parameters or network output ({text})", step)
    return None
