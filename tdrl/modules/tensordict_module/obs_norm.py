"""``RunningObsNorm``: observations normalised by running statistics, as a TensorDict module.

The statistics (mean, variance, count) are float64 buffers, so they travel with
``state_dict()`` (checkpoints, Ray workers' weights, ``torch.export``); calling
the module never changes them: only :meth:`RunningObsNorm.update` does.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from tdrl.modules.distributions.bounds import _is_compiling
from tdrl.modules.tensordict_module.core import (
    TDRLModuleBase,
    key_str,
    normalize_keys,
    read_key,
    set_value,
)

__all__ = ["RunningObsNorm"]

_STATS = ("mean", "var", "count")


class RunningObsNorm(TDRLModuleBase):
    """``clip((x - mean) / sqrt(var + eps), -clip, clip)`` with running ``mean`` / ``var``.

    SB3's ``VecNormalize`` observation normalisation (``clip`` 10, ``eps`` 1e-8)
    as a module to put at the front of a policy / value network: reads
    ``in_keys[0]``, writes ``out_keys[0]`` (default: ``"observation"`` ->
    ``"observation_norm"``, leaving the raw observation in place).

    - :meth:`update` merges a batch of observations into the statistics
      (parallel-variance formula of Chan et al., in float64); it is the only
      thing that changes them, and it refuses in eval mode (frozen statistics).
      Before the first update the module is the identity up to the clip
      (mean 0, variance 1). SB3 starts its count at 1e-4 instead of 0.
    - ``mean``, ``var`` and ``count`` are float64 buffers: saved in
      ``state_dict()``, moved by ``.to(device)``, left float64 by dtype casts.
      Devices without float64 (MPS) are not supported.
    - A NaN or infinite observation raises ``ValueError`` naming the key, in
      :meth:`update` and in the forward pass (skipped while ``torch.export`` /
      ``torch.compile`` trace it, where the check cannot branch).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> norm = RunningObsNorm(2)
        >>> norm.update(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))
        >>> norm.mean.tolist(), norm.var.tolist(), int(norm.count)
        ([1.0, 20.0], [1.0, 100.0], 2)
        >>> td = norm(TensorDict(observation=torch.tensor([[1.0, 30.0]]), batch_size=[1]))
        >>> td["observation_norm"]
        tensor([[0., 1.]])
        >>> norm(torch.tensor([[3.0, 20.0]]))  # tensors in, tensor out
        tensor([[2., 0.]])
    """

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(
        self,
        shape: int | Sequence[int],
        in_keys: NestedKey | Sequence[NestedKey] = "observation",
        out_keys: NestedKey | Sequence[NestedKey] | None = None,
        *,
        clip: float = 10.0,
        eps: float = 1e-8,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.shape = torch.Size([shape] if isinstance(shape, int) else shape)
        self.in_keys = normalize_keys(in_keys, "in_keys")
        if out_keys is None and len(self.in_keys) == 1:  # "observation" -> "observation_norm"
            key = self.in_keys[0]
            out_keys = f"{key}_norm" if isinstance(key, str) else (*key[:-1], f"{key[-1]}_norm")
        self.out_keys = normalize_keys(out_keys, "out_keys")
        if len(self.in_keys) != 1 or len(self.out_keys) != 1:
            raise ValueError(
                f"RunningObsNorm normalises one key: got in_keys {self.in_keys} and "
                f"out_keys {self.out_keys}"
            )
        if not clip > 0 or not eps > 0:
            raise ValueError(f"RunningObsNorm needs clip > 0 and eps > 0, got clip={clip}, "
                             f"eps={eps}")
        self.clip, self.eps = float(clip), float(eps)
        f64 = {"dtype": torch.float64, "device": device}
        self.register_buffer("mean", torch.zeros(self.shape, **f64))
        self.register_buffer("var", torch.ones(self.shape, **f64))
        self.register_buffer("count", torch.zeros((), **f64))

    # ------------------------------------------------------------------------------- stats
    def update(self, obs: torch.Tensor | np.ndarray) -> None:
        """Merge a batch of observations (shape ``[..., *shape]``) into the statistics.

        Examples:
            >>> norm = RunningObsNorm(1)
            >>> norm.update(torch.tensor([[1.0], [3.0]])); norm.update(torch.tensor([[5.0]]))
            >>> norm.mean.item(), round(norm.var.item(), 6), norm.count.item()
            (3.0, 2.666667, 3.0)
            >>> norm.eval().update(torch.zeros(1, 1))
            Traceback (most recent call last):
            ...
            RuntimeError: RunningObsNorm is in eval mode: its statistics are frozen (call .train() to update them)
        """
        if not self.training:
            raise RuntimeError(
                "RunningObsNorm is in eval mode: its statistics are frozen "
                "(call .train() to update them)"
            )
        mean, var = self.mean, self.var
        if mean.device.type == "cpu":  # numpy views of the buffers: a few µs per small batch
            if isinstance(obs, torch.Tensor):
                obs = obs.detach().cpu().numpy()
            x: Any = np.asarray(obs, dtype=np.float64)
            mean, var = mean.numpy(), var.numpy()
        else:
            x = torch.as_tensor(obs, dtype=torch.float64, device=mean.device)
        self._check_shape(x, "update")
        x = x.reshape(-1, *self.shape)
        if x.shape[0] == 0:
            return
        if not math.isfinite(float(x.sum())):  # one reduction; inf - inf is NaN too
            self._raise_non_finite(torch.as_tensor(x), "update")
        self.count.fill_(_merge(mean, var, float(self.count), x))

    # ------------------------------------------------------------------------------- forward
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` normalised with the current statistics (checked, in ``x``'s dtype)."""
        self._check_shape(x, "input")
        if _is_compiling():  # traced: no data-dependent check, no cache
            mean, std = self.mean.to(x.dtype), (self.var + self.eps).sqrt().to(x.dtype)
        else:
            if not math.isfinite(float(x.sum(dtype=torch.float64))):
                self._raise_non_finite(x, "input")
            mean, std = self._moments(x.dtype)
        return ((x - mean) / std).clamp(-self.clip, self.clip)

    def _moments(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean`` and ``sqrt(var + eps)`` in ``dtype``, recomputed when the statistics change."""
        mean, var = self.mean, self.var
        # update() writes through numpy views on CPU, so the count's version is part of the key
        key = (id(mean), mean._version, id(var), var._version, self.count._version, dtype)
        cached = self.__dict__.get("_tdrl_moments")
        if cached is None or cached[0] != key:
            cached = (key, mean.to(dtype), (var + self.eps).sqrt().to(dtype))
            self.__dict__["_tdrl_moments"] = cached
        return cached[1], cached[2]

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        return set_value(td, self.out_keys[0], self.normalize(read_key(td, self.in_keys[0], self)))

    def _leaf_plan(self) -> tuple[Any, list, list, list[str] | None] | None:
        return self.normalize, self.in_keys, self.out_keys, None

    # ------------------------------------------------------------------------------- checks
    def _check_shape(self, x: Any, where: str) -> None:
        n = len(self.shape)
        if x.ndim < n or x.shape[x.ndim - n:] != self.shape:
            raise ValueError(
                f"RunningObsNorm ({where}, key {key_str(self.in_keys[0])}): expected "
                f"observations of shape [..., {', '.join(map(str, self.shape))}], got "
                f"{list(x.shape)}"
            )

    def _raise_non_finite(self, x: torch.Tensor, where: str) -> None:
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"RunningObsNorm ({where}, key {key_str(self.in_keys[0])}): {bad} NaN or "
            f"infinite value(s) in the observations; the statistics are left unchanged"
        )

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> RunningObsNorm:
        saved = {name: getattr(self, name) for name in _STATS}
        out = super()._apply(fn, *args, **kwargs)
        for name, old in saved.items():  # a dtype cast (.float(), .half()) keeps float64 stats
            new = getattr(self, name)
            if new.dtype != torch.float64:
                setattr(self, name, old.to(new.device))
        return out

    def extra_repr(self) -> str:
        return (f"shape={tuple(self.shape)}, in_keys={self.in_keys}, out_keys={self.out_keys}, "
                f"clip={self.clip:g}, eps={self.eps:g}")


def _merge(mean: Any, var: Any, count: float, x: Any) -> float:
    """Chan et al.'s parallel mean/variance merge of the rows of ``x`` into ``mean`` / ``var``
    (numpy arrays or tensors, updated in place); returns the new count."""
    n = x.shape[0]
    total = count + n
    var *= count / total
    if n == 1:
        delta = x[0] - mean
    else:
        batch_mean = x.mean(0)
        delta = batch_mean - mean
        var += ((x - batch_mean) ** 2).mean(0) * (n / total)
    var += delta * delta * (count * n / (total * total))
    mean += delta * (n / total)
    return total
