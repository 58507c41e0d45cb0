"""Probabilistic modules: build a distribution from TensorDict entries and draw from it."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import distributions as D

from tdrl.data.tensor_specs import TensorSpec
from tdrl.envs.utils import ExplorationType as InteractionType
from tdrl.envs.utils import exploration_type as interaction_type
from tdrl.modules.distributions import Delta
from tdrl.modules.tensordict_module.common import SpecProjector, as_composite
from tdrl.modules.tensordict_module.core import (
    TDRLModuleBase,
    normalize_keys,
    read_key,
    set_value,
)
from tdrl.modules.tensordict_module.sequence import SafeSequential

__all__ = [
    "SafeProbabilisticModule",
    "SafeProbabilisticTensorDictSequential",
    "draw",
]


def _deterministic(dist: D.Distribution) -> torch.Tensor:
    value = getattr(dist, "deterministic_sample", None)
    if value is not None:
        return value
    if dist.has_enumerate_support:
        return dist.mode
    try:
        return dist.mean
    except NotImplementedError:
        return dist.mode


def draw(dist: D.Distribution, kind: InteractionType) -> torch.Tensor:
    """Draws a value from ``dist`` according to an interaction (exploration) type.

    RANDOM samples (``rsample`` when the distribution has it), MODE and MEAN
    read the attribute of that name, DETERMINISTIC reads
    ``deterministic_sample`` (else the mode of a discrete distribution or the
    mean of a continuous one).

    Examples:
        >>> import torch
        >>> from tensordict.nn.probabilistic import InteractionType
        >>> d = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
        >>> draw(d, InteractionType.MEAN)
        tensor([0., 0.])
    """
    if kind is InteractionType.RANDOM:
        return dist.rsample() if dist.has_rsample else dist.sample()
    if kind is InteractionType.DETERMINISTIC:
        return _deterministic(dist)
    if kind is InteractionType.MODE:
        return dist.mode
    if kind is InteractionType.MEAN:
        return dist.mean
    if kind is InteractionType.MEDIAN:
        return dist.median
    raise ValueError(
        f"unknown interaction type {kind!r}; valid: {[t.name for t in InteractionType]}"
    )


class SafeProbabilisticModule(TDRLModuleBase):
    """Reads distribution parameters, builds a distribution and writes a draw from it.

    ``in_keys`` name the distribution's keyword arguments: a list of keys whose
    last element is the argument name (``["loc", "scale"]``), or a dict
    ``{argument: key}``. The drawn value is written under ``out_keys[0]``;
    with ``return_log_prob=True`` its log-probability goes under
    ``log_prob_key`` (``"sample_log_prob"``). The draw follows the current
    exploration type (``set_exploration_type``), else
    ``default_interaction_type``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.modules import SafeProbabilisticModule, TanhNormal
        >>> mod = SafeProbabilisticModule(["loc", "scale"], ["action"],
        ...     distribution_class=TanhNormal, return_log_prob=True)
        >>> td = TensorDict(loc=torch.zeros(3, 2), scale=torch.ones(3, 2), batch_size=[3])
        >>> td = mod(td)
        >>> td["action"].shape, td["sample_log_prob"].shape
        (torch.Size([3, 2]), torch.Size([3]))
    """

    def __init__(
        self,
        in_keys: NestedKey | Sequence[NestedKey] | dict[str, NestedKey],
        out_keys: NestedKey | Sequence[NestedKey] | None = None,
        spec: TensorSpec | None = None,
        safe: bool = False,
        default_interaction_type: InteractionType | str = InteractionType.DETERMINISTIC,
        distribution_class: type = Delta,
        distribution_kwargs: dict | None = None,
        return_log_prob: bool = False,
        log_prob_key: NestedKey | None = "sample_log_prob",
        cache_dist: bool = False,
        n_empirical_estimate: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(in_keys, dict):
            names = list(in_keys.keys())
            keys = normalize_keys(list(in_keys.values()), "in_keys")
        else:
            keys = normalize_keys(in_keys, "in_keys")
            names = [k if isinstance(k, str) else k[-1] for k in keys]
        if not keys:
            raise ValueError(f"{type(self).__name__} needs in_keys naming the distribution inputs")
        self._arg_names = names
        self.in_keys = keys
        out = normalize_keys(out_keys if out_keys is not None else ["action"], "out_keys")
        if not out:
            raise ValueError(f"{type(self).__name__} needs an out_key for the sample")
        self.log_prob_key = normalize_keys(log_prob_key or "sample_log_prob", "log_prob_key")[0]
        self.return_log_prob = return_log_prob
        self.out_keys = out + [self.log_prob_key] if return_log_prob else out
        self._sample_key = out[0]
        self.default_interaction_type = InteractionType(default_interaction_type)
        if not (isinstance(distribution_class, type) or callable(distribution_class)):
            raise TypeError(f"distribution_class must be a class, got {distribution_class!r}")
        self.distribution_class = distribution_class
        # tensors among the kwargs become buffers so that .to(device) moves them
        self._static_kwargs: dict[str, Any] = {}
        self._buffer_kwargs: list[tuple[str, str]] = []
        for name, value in (distribution_kwargs or {}).items():
            if isinstance(value, torch.Tensor):
                buf = f"_dist_kw_{name}"
                self.register_buffer(buf, value.clone())
                self._buffer_kwargs.append((name, buf))
            else:
                self._static_kwargs[name] = value
        self.spec = as_composite(spec, out)
        self.safe = safe
        self._projector = SpecProjector(self.spec if safe else None, out[:1])
        self.cache_dist = cache_dist
        self.n_empirical_estimate = n_empirical_estimate

    @property
    def distribution_kwargs(self) -> dict[str, Any]:
        """The keyword arguments passed to ``distribution_class`` besides the read ones."""
        kw = dict(self._static_kwargs)
        for name, buf in self._buffer_kwargs:
            kw[name] = getattr(self, buf)
        return kw

    def get_dist(self, tensordict: TensorDictBase) -> D.Distribution:
        """Builds the distribution from the parameters in ``tensordict``."""
        kw = {n: read_key(tensordict, k, self) for n, k in zip(self._arg_names, self.in_keys)}
        if self._static_kwargs:
            kw.update(self._static_kwargs)
        for name, buf in self._buffer_kwargs:
            kw[name] = getattr(self, buf)
        return self.distribution_class(**kw)

    def log_prob(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Log-probability of the value stored under the sample key."""
        return self.get_dist(tensordict).log_prob(read_key(tensordict, self._sample_key, self))

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        dist = self.get_dist(td)
        kind = interaction_type() or self.default_interaction_type
        value = draw(dist, kind)
        if self._projector:
            value = self._projector.pairs[0][1].project(value)
        set_value(td, self._sample_key, value)
        if self.return_log_prob:
            set_value(td, self.log_prob_key, dist.log_prob(value))
        return td

    def extra_repr(self) -> str:
        return (
            f"in_keys={self.in_keys}, out_keys={self.out_keys}, "
            f"distribution_class={getattr(self.distribution_class, '__name__', self.distribution_class)}"
        )


class SafeProbabilisticTensorDictSequential(SafeSequential):
    """A ``SafeSequential`` that ends with a probabilistic module, so it has ``get_dist``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from tdrl.modules import (NormalParamExtractor, SafeProbabilisticModule,
        ...     SafeProbabilisticTensorDictSequential, TanhNormal)
        >>> net = TensorDictModule(torch.nn.Sequential(torch.nn.Linear(3, 4), NormalParamExtractor()),
        ...                        in_keys=["obs"], out_keys=["loc", "scale"])
        >>> seq = SafeProbabilisticTensorDictSequential(
        ...     net, SafeProbabilisticModule(["loc", "scale"], ["action"], distribution_class=TanhNormal))
        >>> seq.get_dist(TensorDict(obs=torch.zeros(5, 3), batch_size=[5])).batch_shape
        torch.Size([5])
    """

    def __init__(self, *modules: TensorDictModuleBase, partial_tolerant: bool = False) -> None:
        super().__init__(*modules, partial_tolerant=partial_tolerant)
        if not hasattr(self.module[-1], "get_dist"):
            raise TypeError(
                f"the last module of a {type(self).__name__} must be probabilistic "
                f"(have get_dist), got {type(self.module[-1]).__name__}"
            )

    def log_prob(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Log-probability of the stored sample under the distribution the modules build."""
        for step in self._steps[:-1]:
            tensordict = step(tensordict)
        return self.module[-1].log_prob(tensordict)

    @property
    def default_interaction_type(self) -> InteractionType:
        return self.module[-1].default_interaction_type
