"""Generalised state-dependent exploration (gSDE, Raffin et al. 2021), as TorchRL's ``gSDEModule``.

The action noise is ``(sigma * eps) @ state``: a noise matrix ``eps`` (one per
batch element, ``[action_dim, state_dim]``) is held fixed between resets, so the
exploration is a smooth function of the state rather than fresh noise each step.
A zero noise input (``_eps_gSDE`` of zeros, one per batch element, as an env
transform writes at reset) asks the module to draw a new one.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import distributions as d
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from tdrl.envs.utils import ExplorationType, exploration_type

__all__ = ["LazygSDEModule", "gSDEModule", "inv_softplus"]

_MEAN_ONLY = (ExplorationType.DETERMINISTIC, ExplorationType.MODE, ExplorationType.MEAN)


def inv_softplus(x: torch.Tensor | float) -> torch.Tensor:
    """The inverse of ``softplus``: ``log(exp(x) - 1)`` for ``x > 0``.

    Examples:
        >>> import torch
        >>> from tdrl.modules.models.gsde import inv_softplus
        >>> torch.nn.functional.softplus(inv_softplus(torch.tensor([0.5, 2.0])))
        tensor([0.5000, 2.0000])
    """
    x = torch.as_tensor(x, dtype=torch.get_default_dtype())
    return x.expm1().log()


class gSDEModule(nn.Module):  # noqa: N801 - TorchRL's name
    """gSDE head: ``(mu, state, eps) -> (mu, scale, action, eps)``.

    ``action = mu + (sigma * eps) @ state`` when exploring (exploration type RANDOM
    or unset), ``mu`` under DETERMINISTIC / MODE / MEAN. ``scale`` is the standard
    deviation of that noise, ``sqrt(sum_j (sigma_ij * state_j)^2)``, so ``(mu, scale)``
    can feed a Normal / TanhNormal head. ``sigma`` is ``softplus(log_sigma)``
    (learned) or a fixed buffer ``_sigma``, clipped to ``[scale_min, scale_max]``.

    Args:
        action_dim, state_dim: sizes of ``mu`` and ``state`` (their last dim).
        sigma_init: the initial noise scale for unit-variance states: every
            ``sigma_ij`` starts at ``sigma_init / sqrt(state_dim)`` (default 1.0).
        scale_min, scale_max: clip of ``sigma`` (defaults 0.01, 10).
        learn_sigma: whether ``sigma`` is a parameter (default) or a buffer.
        transform: optional ``torch.distributions.Transform`` applied to the action.
        device: where to create ``sigma``.

    Examples:
        >>> import torch
        >>> from tdrl.envs.utils import ExplorationType, set_exploration_type
        >>> from tdrl.modules import gSDEModule
        >>> m = gSDEModule(action_dim=2, state_dim=3, sigma_init=0.5)
        >>> mu, state = torch.zeros(4, 2), torch.randn(4, 3)
        >>> with set_exploration_type(ExplorationType.RANDOM):
        ...     mu, scale, action, eps = m(mu, state, torch.zeros(4, 1))   # zeros: draw noise
        >>> scale.shape, action.shape, eps.shape
        (torch.Size([4, 2]), torch.Size([4, 2]), torch.Size([4, 2, 3]))
        >>> with set_exploration_type(ExplorationType.RANDOM):
        ...     torch.equal(m(mu, state, eps)[2], action)                 # same noise, same action
        True
    """

    def __init__(
        self,
        action_dim: int,
        state_dim: int,
        sigma_init: float | None = None,
        scale_min: float = 0.01,
        scale_max: float = 10.0,
        learn_sigma: bool = True,
        transform: d.Transform | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if not 0 < scale_min < scale_max:
            raise ValueError(
                f"gSDEModule needs 0 < scale_min < scale_max, got {scale_min}, {scale_max}"
            )
        self.action_dim, self.state_dim = int(action_dim), int(state_dim)
        self.scale_min, self.scale_max = float(scale_min), float(scale_max)
        self.learn_sigma = bool(learn_sigma)
        self.transform = transform
        shape = (self.action_dim, self.state_dim)
        if self.state_dim > 0:
            s0 = (1.0 if sigma_init is None else float(sigma_init)) / math.sqrt(self.state_dim)
            s0 = max(s0, self.scale_min)
            init = inv_softplus(s0).item() if self.learn_sigma else s0
        else:  # the lazy subclass fills these in
            init = 0.0
        if self.learn_sigma:
            self.log_sigma = nn.Parameter(torch.full(shape, init, device=device))
        else:
            self.register_buffer("_sigma", torch.full(shape, init, device=device))
        self.register_buffer("sigma_init", torch.tensor(init, device=device))

    @property
    def sigma(self) -> torch.Tensor:
        """The noise scales ``[action_dim, state_dim]``, clipped below at ``scale_min``."""
        raw = F.softplus(self.log_sigma) if self.learn_sigma else self._sigma
        return raw.clamp_min(self.scale_min)

    def forward(
        self, mu: torch.Tensor, state: torch.Tensor, _eps_gSDE: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = state.shape[:-1]
        if mu.shape[:-1] != batch:
            raise RuntimeError(
                f"gSDEModule: mu and state are expected to have matching batch size, got "
                f"mu {tuple(mu.shape)} and state {tuple(state.shape)}"
            )
        sigma = self.sigma.clamp_max(self.scale_max)
        explore = exploration_type() not in _MEAN_ONLY
        eps = _eps_gSDE
        if eps is not None and eps.shape[: len(batch)] != batch:
            raise RuntimeError(
                f"gSDEModule: noise and state are expected to have matching batch size, got "
                f"noise {tuple(eps.shape)} and state {tuple(state.shape)}"
            )
        noise_shape = (*batch, *sigma.shape)
        if eps is None:
            if explore:
                eps = torch.randn(noise_shape, device=sigma.device, dtype=sigma.dtype)
            else:
                eps = torch.zeros(noise_shape, device=sigma.device, dtype=sigma.dtype)
        elif eps.numel() == batch.numel() and not eps.any():
            # a zero per batch element: the reset signal; draw this episode's noise
            eps = torch.randn(noise_shape, device=sigma.device, dtype=sigma.dtype)
        if explore:
            action = mu + ((sigma * eps) @ state.unsqueeze(-1)).squeeze(-1)
        else:
            action = mu
        scale = (sigma * state.unsqueeze(-2)).pow(2).sum(-1).clamp_min(1e-10).sqrt()
        if not torch.isfinite(scale).all():
            warnings.warn("gSDEModule: the scale is not finite", stacklevel=2)
        if self.transform is not None:
            action = self.transform(action)
        return mu, scale, action, eps


class LazygSDEModule(LazyModuleMixin, gSDEModule):
    """A :class:`gSDEModule` that reads ``action_dim`` / ``state_dim`` from its first call.

    It also scales ``sigma`` to the first batch of states: with per-feature second
    moments ``m_j = mean(state_j^2)``, ``sigma_ij = sigma_init / sqrt(state_dim * m_j)``,
    so the noise ``scale`` starts near ``sigma_init`` (default 1) whatever the state's
    magnitude. A single state (no batch) counts as unit-scaled.

    Args:
        sigma_init, scale_min, scale_max, learn_sigma, transform, device: as :class:`gSDEModule`.

    Examples:
        >>> import torch
        >>> from tdrl.envs.utils import ExplorationType, set_exploration_type
        >>> from tdrl.modules import LazygSDEModule
        >>> _ = torch.manual_seed(0)
        >>> m = LazygSDEModule(sigma_init=2.0)
        >>> state = 5 * torch.randn(1000, 3)
        >>> with set_exploration_type(ExplorationType.RANDOM):
        ...     _, scale, action, _ = m(torch.zeros(1000, 2), state, None)
        >>> m.log_sigma.shape, round(scale.mean().item())
        (torch.Size([2, 3]), 2)
    """

    cls_to_become = gSDEModule
    log_sigma: UninitializedParameter
    _sigma: UninitializedBuffer
    sigma_init: UninitializedBuffer

    def __init__(
        self,
        sigma_init: float | None = None,
        scale_min: float = 0.01,
        scale_max: float = 10.0,
        learn_sigma: bool = True,
        transform: d.Transform | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(
            0,
            0,
            scale_min=scale_min,
            scale_max=scale_max,
            learn_sigma=learn_sigma,
            transform=transform,
            device=device,
        )
        kw = {"device": device, "dtype": torch.get_default_dtype()}
        self._sigma_init = sigma_init
        self.sigma_init = UninitializedBuffer(**kw)
        if learn_sigma:
            self.log_sigma = UninitializedParameter(**kw)
        else:
            self._sigma = UninitializedBuffer(**kw)

    def reset_parameters(self) -> None:
        """Nothing to do before the first call (the sizes are unknown)."""

    def initialize_parameters(  # type: ignore[override]
        self, mu: torch.Tensor, state: torch.Tensor, _eps_gSDE: torch.Tensor | None
    ) -> None:
        if not self.has_uninitialized_params():
            return
        self.action_dim, self.state_dim = int(mu.shape[-1]), int(state.shape[-1])
        with torch.no_grad():
            flat = state.reshape(-1, self.state_dim)
            if flat.shape[0] > 1:
                second_moment = flat.pow(2).mean(0)
            else:
                second_moment = torch.ones(self.state_dim, device=state.device)
            inv = second_moment.reciprocal()
            if self.learn_sigma and self._sigma_init is None:
                inv = inv.clamp_min(self.scale_min)
            target = (1.0 if self._sigma_init is None else self._sigma_init) * (
                inv / self.state_dim
            ).sqrt()
            target = target.clamp_min(self.scale_min).to(self.sigma_init.dtype)
            init = inv_softplus(target).to(target) if self.learn_sigma else target
            self.sigma_init.materialize(init.shape)
            self.sigma_init.copy_(init)
            shape = (self.action_dim, self.state_dim)
            if self.learn_sigma:
                self.log_sigma.materialize(shape)
                self.log_sigma.copy_(init.expand(shape))
            else:
                self._sigma.materialize(shape)
                self._sigma.copy_(init.expand(shape))
