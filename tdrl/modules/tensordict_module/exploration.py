"""Exploration modules, placed after a policy: e-greedy, additive Gaussian and OU noise.

Each module rewrites the action in place. It explores under the RANDOM
exploration type and outside any exploration context (as in TorchRL); under
DETERMINISTIC, MODE, MEAN or MEDIAN it leaves the action as it is. The
exploration factor (``eps`` / ``sigma``) is a buffer, annealed linearly by
``.step(frames)`` from its initial to its final value over
``annealing_num_steps`` frames, and saved in the ``state_dict``.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from tdrl.data import OneHot
    >>> from tdrl.envs.utils import ExplorationType, set_exploration_type
    >>> from tdrl.modules import EGreedyModule, QValueActor, SafeSequential
    >>> actor = QValueActor(torch.nn.Linear(4, 3), spec=OneHot(3))
    >>> explore = EGreedyModule(OneHot(3), eps_init=1.0, eps_end=0.0, annealing_num_steps=10)
    >>> policy = SafeSequential(actor, explore)
    >>> td = policy(TensorDict(observation=torch.randn(6, 4), batch_size=[6]))
    >>> td["action"].sum(-1)
    tensor([1, 1, 1, 1, 1, 1])
    >>> explore.step(5)
    >>> round(explore.eps.item(), 3)
    0.5
"""
from __future__ import annotations

import itertools
import math
import struct
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from tdrl.data.tensor_specs import Composite, TensorSpec
from tdrl.envs.utils import ExplorationType, exploration_type
from tdrl.modules.tensordict_module.action_space import resolve_action_space
from tdrl.modules.tensordict_module.core import (
    TDRLModuleBase,
    key_str,
    missing_key_error,
    normalize_keys,
)
from tdrl.modules.tensordict_module.qvalue_module import QValueModule, mask_missing_error

__all__ = ["EGreedyModule", "AdditiveGaussianModule", "OrnsteinUhlenbeckProcessModule"]

_F32 = struct.Struct("f")


def _round_f32(x: float) -> float:
    """``x`` rounded to the nearest float32 (a double op then this rounding is the float32 op)."""
    return _F32.unpack(_F32.pack(x))[0]


# how a Python float is rounded to the factor's buffers' dtype (others take the tensor path)
_HOST_ROUND = {torch.float32: _round_f32, torch.float64: float}


def _exploring() -> bool:
    """True under RANDOM and outside any exploration context."""
    kind = exploration_type()
    return kind is None or kind is ExplorationType.RANDOM


def _leaf_spec(spec: TensorSpec | None, action_key: NestedKey, owner: str) -> TensorSpec | None:
    if isinstance(spec, Composite):
        keys = list(spec.keys(include_nested=True, leaves_only=True))
        if action_key not in keys:
            raise KeyError(
                f"{owner}: the Composite spec has no entry for the action key "
                f"{key_str(action_key)}; its keys: {keys}"
            )
        return spec[action_key]
    if spec is not None and not isinstance(spec, TensorSpec):
        raise TypeError(f"{owner}: spec must be a TensorSpec, got {type(spec).__name__}")
    return spec


def _batch_shape(action: torch.Tensor, spec: TensorSpec, key: NestedKey, owner: str) -> torch.Size:
    n = len(spec.shape)
    if action.ndim < n or tuple(action.shape[action.ndim - n :]) != tuple(spec.shape):
        raise ValueError(
            f"Action spec shape does not match the action shape: {owner}: the action "
            f"{key_str(key)} has shape {tuple(action.shape)}, which does not end with the "
            f"spec's shape {tuple(spec.shape)}"
        )
    return action.shape[: action.ndim - n]


class _Annealed(TDRLModuleBase):
    """A linearly annealed factor kept in buffers ``<name>``, ``<name>_init``, ``<name>_end``.

    It also holds the action spec: ``spec`` (a ``Composite`` keyed by the action
    key, or ``None`` until set) can be assigned after construction, as in TorchRL.
    """

    _factor = "eps"
    _action_key: NestedKey = "action"
    _leaf: TensorSpec | None = None

    @property
    def spec(self) -> Composite | None:
        """The action spec, as a ``Composite`` holding the action key (``None``: not set)."""
        return self._spec

    @spec.setter
    def spec(self, spec: TensorSpec | None) -> None:
        self._set_leaf(_leaf_spec(spec, self._action_key, type(self).__name__))

    def _set_leaf(self, leaf: TensorSpec | None) -> None:
        self._leaf = leaf
        self._spec = Composite({self._action_key: leaf}) if leaf is not None else None

    def _init_factor(self, init: float, end: float, steps: int, device: Any) -> None:
        if steps <= 0:
            raise ValueError(f"annealing_num_steps must be a positive int, got {steps!r}")
        f = self._factor
        self.register_buffer(f"{f}_init", torch.tensor(float(init), device=device))
        self.register_buffer(f"{f}_end", torch.tensor(float(end), device=device))
        self.register_buffer(f, torch.tensor(float(init), device=device))
        self.annealing_num_steps = int(steps)

    def step(self, frames: int = 1) -> None:
        """Moves the factor ``frames`` steps from its initial toward its final value."""
        f = self._factor
        init, end, value = getattr(self, f"{f}_init"), getattr(self, f"{f}_end"), getattr(self, f)
        r = _HOST_ROUND.get(value.dtype)
        if r is not None and init.dtype == end.dtype == value.dtype:
            # the same arithmetic on Python floats, each result rounded to the buffers' dtype
            # (as is the Python float a tensor is multiplied by): bit for bit the tensor ops
            # below, in a few microseconds where those six ops take ~40 (once per env step)
            i, e, v = init.item(), end.item(), value.item()
            new_v = r(v + r(r(e - i) * r(frames / self.annealing_num_steps)))
            value.fill_(max(new_v, e) if e <= i else min(new_v, e))
            return
        delta = (end - init) * (frames / self.annealing_num_steps)
        new = value + delta
        new = torch.maximum(new, end) if bool(end <= init) else torch.minimum(new, end)
        value.copy_(new)


class EGreedyModule(_Annealed):
    """Epsilon-greedy exploration: with probability ``eps`` the action becomes a random one.

    One draw per batch element; a replaced action is drawn uniformly from
    ``spec`` (among the allowed actions when ``action_mask_key`` is given: a
    boolean mask shaped like the action values of :class:`QValueModule`), with
    the dtype and shape of the greedy action. Works with every discrete spec
    of the Q-value modules and with continuous specs (drawn with ``spec.rand``).

    Args:
        spec: the action spec (or a ``Composite`` holding ``action_key``).
        eps_init: initial epsilon (1.0).
        eps_end: final epsilon (0.1).
        annealing_num_steps: frames to go from ``eps_init`` to ``eps_end`` (1000).
        action_key: the action entry (``"action"``).
        action_mask_key: the entry of the mask of allowed actions (optional).
        device: where the buffers live.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.data import Categorical
        >>> from tdrl.modules import EGreedyModule
        >>> _ = torch.manual_seed(0)
        >>> explore = EGreedyModule(Categorical(4), eps_init=1.0, action_mask_key="mask")
        >>> td = TensorDict(action=torch.zeros(1000, dtype=torch.int64),
        ...                 mask=torch.tensor([False, True, False, True]).expand(1000, 4),
        ...                 batch_size=[1000])
        >>> sorted(explore(td)["action"].unique().tolist())
        [1, 3]
    """

    def __init__(
        self,
        spec: TensorSpec,
        eps_init: float = 1.0,
        eps_end: float = 0.1,
        annealing_num_steps: int = 1000,
        *,
        action_key: NestedKey = "action",
        action_mask_key: NestedKey | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (("eps_init", eps_init), ("eps_end", eps_end)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name}: {arg} must be in [0, 1], got {value!r}")
        self._init_factor(eps_init, eps_end, annealing_num_steps, device)
        self._action_key = normalize_keys(action_key, "action_key")[0]
        self._mask_key = (
            normalize_keys(action_mask_key, "action_mask_key")[0]
            if action_mask_key is not None
            else None
        )
        self._device = device
        self.spec = spec
        self.in_keys = [self._action_key] + ([self._mask_key] if self._mask_key else [])
        self.out_keys = [self._action_key]

    def _set_leaf(self, leaf: TensorSpec | None) -> None:
        name = type(self).__name__
        picker = None
        if leaf is not None:
            try:
                resolve_action_space(None, leaf, owner=name)
                discrete = True
            except ValueError:
                discrete = False
            if discrete:
                # draws a random discrete action: the greedy pick over random scores
                picker = QValueModule(spec=leaf, action_mask_key=self._mask_key)
                if self._device is not None:
                    picker.to(self._device)
            elif self._mask_key is not None:
                raise ValueError(
                    f"{name}: action_mask_key needs a discrete action spec (OneHot, Categorical, "
                    f"MultiOneHot, MultiCategorical or Binary), got {type(leaf).__name__}"
                )
        super()._set_leaf(leaf)
        self._picker: QValueModule | None = picker

    def _values_shape(self, batch: torch.Size) -> tuple[int, ...]:
        """The shape of action values whose greedy action has the spec's shape."""
        picker = self._picker
        shape = tuple(self._leaf.shape)
        space = picker._space
        if space.name == "categorical":
            core = shape[:-1] if space.keepdim else shape
            return (*batch, *core, space.n_values)
        if space.name == "multi-categorical":
            return (*batch, *shape[:-1], space.n_values)
        return (*batch, *shape)

    def _random(self, td: TensorDictBase, action: torch.Tensor, batch: torch.Size) -> torch.Tensor:
        picker = self._picker
        if picker is None:
            return self._leaf.rand(batch).to(device=action.device, dtype=action.dtype)
        mask = None
        if self._mask_key is not None:
            mask = td.get(self._mask_key, None)
            if mask is None:
                raise mask_missing_error(self, self._mask_key, td)
        # centred scores: argmax is uniform, and a binary bit is set with probability 1/2
        scores = torch.rand(self._values_shape(batch), device=action.device) - 0.5
        if mask is not None:
            mask = picker._prepare_mask(mask, scores, type(self).__name__)
        random_action, _, _ = picker._select(picker, scores, mask)
        return random_action.to(action.dtype)

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        if not _exploring():
            return td
        action = td.get(self._action_key, None)
        if action is None:
            raise missing_key_error(self, self._action_key, td)
        if self._leaf is None:
            raise RuntimeError(
                "spec must be provided to the exploration wrapper: EGreedyModule has no action "
                "spec to draw random actions from; pass spec=... or set module.spec"
            )
        batch = _batch_shape(action, self._leaf, self._action_key, type(self).__name__)
        random_action = self._random(td, action, batch)
        explore = torch.rand(batch, device=action.device) < self.eps
        explore = explore.reshape((*batch, *([1] * (action.ndim - len(batch)))))
        return td.set(self._action_key, torch.where(explore, random_action, action))

    def extra_repr(self) -> str:
        return (
            f"eps={self.eps.item():.4f}, eps_end={self.eps_end.item():.4f}, "
            f"action_key={self._action_key!r}, action_mask_key={self._mask_key!r}"
        )


class AdditiveGaussianModule(_Annealed):
    """Adds Gaussian noise ``sigma * N(mean, std)`` to a continuous action, then clips it.

    ``sigma`` anneals from ``sigma_init`` to ``sigma_end`` with ``.step``.
    With ``safe=True`` (default; TorchRL's default is ``False``) the noisy
    action is projected into ``spec`` (clamped to its bounds).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.data import Bounded
        >>> from tdrl.modules import AdditiveGaussianModule
        >>> noise = AdditiveGaussianModule(Bounded(-1.0, 1.0, shape=(2,)), sigma_init=10.0)
        >>> td = noise(TensorDict(action=torch.zeros(100, 2), batch_size=[100]))
        >>> bool(td["action"].abs().max() <= 1), bool(td["action"].std() > 0.5)
        (True, True)
    """

    _factor = "sigma"

    def __init__(
        self,
        spec: TensorSpec | None = None,
        sigma_init: float = 1.0,
        sigma_end: float = 0.1,
        annealing_num_steps: int = 1000,
        mean: float = 0.0,
        std: float = 1.0,
        *,
        action_key: NestedKey = "action",
        safe: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self._init_factor(sigma_init, sigma_end, annealing_num_steps, device)
        if float(std) < 0:
            raise ValueError(f"{name}: std must be >= 0, got {std!r}")
        self.register_buffer("mean", torch.tensor(float(mean), device=device))
        self.register_buffer("std", torch.tensor(float(std), device=device))
        self._action_key = normalize_keys(action_key, "action_key")[0]
        self.safe = safe
        self.spec = spec
        self.in_keys = [self._action_key]
        self.out_keys = [self._action_key]

    def _add_noise(self, action: torch.Tensor) -> torch.Tensor:
        """``action + sigma * N(mean, std)``, projected into the spec when ``safe``."""
        if self.safe and self._leaf is None:
            raise RuntimeError(
                f"spec has not been set: {type(self).__name__}(safe=True) needs the action spec "
                "to clip the noisy action into; pass spec=... or set module.spec (or safe=False)"
            )
        noise = torch.randn_like(action) * self.std + self.mean
        out = action + noise * self.sigma
        if self.safe:
            out = self._leaf.project(out)
        return out

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        if not _exploring():
            return td
        action = td.get(self._action_key, None)
        if action is None:
            raise missing_key_error(self, self._action_key, td)
        return td.set(self._action_key, self._add_noise(action))

    def extra_repr(self) -> str:
        return f"sigma={self.sigma.item():.4f}, action_key={self._action_key!r}, safe={self.safe}"


class OrnsteinUhlenbeckProcessModule(_Annealed):
    """Adds temporally correlated Ornstein-Uhlenbeck noise to a continuous action.

    Per batch element, ``noise = prev + theta * (mu - prev) * dt + sigma_t *
    sqrt(dt) * N(0, 1)`` with ``sigma_t = max(sigma_min, sigma - (sigma -
    sigma_min) * n / n_steps_annealing)`` after ``n`` steps of the trajectory
    (constant ``sigma`` when ``sigma_min`` is None). The action becomes
    ``action + eps * noise`` (``eps`` annealed by ``.step``), clipped to
    ``spec`` when ``safe``. The previous noise and the step count are kept in
    the TensorDict under :attr:`noise_key` and :attr:`steps_key`; where
    ``is_init_key`` (``"is_init"``) is True, both restart (noise from ``x0``).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.data import Bounded
        >>> from tdrl.modules import OrnsteinUhlenbeckProcessModule
        >>> ou = OrnsteinUhlenbeckProcessModule(Bounded(-1.0, 1.0, shape=(3,)))
        >>> td = TensorDict(action=torch.zeros(4, 3), batch_size=[4])
        >>> td = ou(td)
        >>> td = ou(td.set("action", torch.zeros(4, 3)))
        >>> td[ou.steps_key]
        tensor([2, 2, 2, 2])
        >>> td = ou(td.set("is_init", torch.tensor([True, False, False, False])))
        >>> td[ou.steps_key]
        tensor([1, 3, 3, 3])
    """

    _factor = "eps"
    _ids = itertools.count()

    def __init__(
        self,
        spec: TensorSpec | None = None,
        eps_init: float = 1.0,
        eps_end: float = 0.1,
        annealing_num_steps: int = 1000,
        theta: float = 0.15,
        mu: float = 0.0,
        sigma: float = 0.2,
        dt: float = 1e-2,
        x0: torch.Tensor | float | None = None,
        sigma_min: float | None = None,
        n_steps_annealing: int = 1000,
        *,
        action_key: NestedKey = "action",
        is_init_key: NestedKey | None = None,
        safe: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self._init_factor(eps_init, eps_end, annealing_num_steps, device)
        if dt <= 0:
            raise ValueError(f"{name}: dt must be > 0, got {dt!r}")
        if n_steps_annealing <= 0:
            raise ValueError(f"{name}: n_steps_annealing must be > 0, got {n_steps_annealing!r}")
        self.theta, self.mu, self.sigma, self.dt = float(theta), float(mu), float(sigma), float(dt)
        self.sigma_min = None if sigma_min is None else float(sigma_min)
        self.n_steps_annealing = int(n_steps_annealing)
        self.register_buffer(
            "x0", torch.as_tensor(0.0 if x0 is None else x0, dtype=torch.float32, device=device)
        )
        self._action_key = normalize_keys(action_key, "action_key")[0]
        self.is_init_key = normalize_keys(
            is_init_key if is_init_key is not None else "is_init", "is_init_key"
        )[0]
        if spec is None:
            raise RuntimeError(f"spec cannot be None: {name} needs the action spec")
        self.spec = spec
        self.safe = safe
        uid = next(self._ids)
        self.noise_key = f"_ou_prev_noise{uid}"
        self.steps_key = f"_ou_steps{uid}"
        self.in_keys = [self._action_key]
        self.out_keys = [self._action_key, self.noise_key, self.steps_key]

    @property
    def ou(self) -> OrnsteinUhlenbeckProcessModule:
        """TorchRL keeps the process (``noise_key``, ``steps_key``) in ``.ou``; here it is the module."""
        return self

    def _reset_rows(self, is_init: torch.Tensor, batch: torch.Size) -> torch.Tensor:
        if is_init.shape == batch:
            return is_init.to(torch.bool)
        n = math.prod(batch)
        if n == 0 or is_init.numel() % max(n, 1):
            raise ValueError(
                f"{type(self).__name__}: {key_str(self.is_init_key)} has shape "
                f"{tuple(is_init.shape)}, which does not match the batch shape {tuple(batch)}"
            )
        return is_init.reshape((*batch, -1)).any(-1)

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        if not _exploring():
            return td
        action = td.get(self._action_key, None)
        if action is None:
            raise missing_key_error(self, self._action_key, td)
        batch = _batch_shape(action, self._leaf, self._action_key, type(self).__name__)
        extra = [1] * (action.ndim - len(batch))
        x0 = self.x0.to(action.dtype).expand_as(action)
        prev = td.get(self.noise_key, None)
        steps = td.get(self.steps_key, None)
        if prev is None or steps is None:
            prev = x0
            steps = torch.zeros(batch, dtype=torch.int64, device=action.device)
        is_init = td.get(self.is_init_key, None)
        if is_init is not None:
            reset = self._reset_rows(is_init, batch)
            prev = torch.where(reset.reshape((*batch, *extra)), x0, prev)
            steps = torch.where(reset, torch.zeros_like(steps), steps)
        if self.sigma_min is None:
            sigma = torch.full(batch, self.sigma, dtype=action.dtype, device=action.device)
        else:
            slope = (self.sigma - self.sigma_min) / self.n_steps_annealing
            sigma = (self.sigma - slope * steps.to(action.dtype)).clamp_min(self.sigma_min)
        noise = (
            prev
            + self.theta * (self.mu - prev) * self.dt
            + sigma.reshape((*batch, *extra)) * math.sqrt(self.dt) * torch.randn_like(prev)
        )
        out = action + self.eps * noise
        if self.safe:
            out = self._leaf.project(out)
        td.set(self._action_key, out)
        td.set(self.noise_key, noise)
        td.set(self.steps_key, steps + 1)
        return td

    def extra_repr(self) -> str:
        return (
            f"eps={self.eps.item():.4f}, theta={self.theta}, mu={self.mu}, sigma={self.sigma}, "
            f"dt={self.dt}, action_key={self._action_key!r}, safe={self.safe}"
        )


_ELSEWHERE = {
    "RandomPolicy": "random_policy",
    "set_exploration_modules_spec_from_env": "random_policy",
    "EGreedyWrapper": "removed",
    "AdditiveGaussianWrapper": "removed",
    "OrnsteinUhlenbeckProcessWrapper": "removed",
}


def __getattr__(name: str) -> Any:
    """TorchRL's names in this module that tdrl keeps in ``random_policy.py`` / ``removed.py``."""
    if name in _ELSEWHERE:
        import importlib

        module = importlib.import_module(f"tdrl.modules.tensordict_module.{_ELSEWHERE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
