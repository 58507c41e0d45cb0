"""Probabilistic modules: build a distribution from TensorDict entries and draw from it."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import CompositeDistribution, TensorDictModuleBase, set_composite_lp_aggregate
from tensordict.utils import NestedKey
from torch import distributions as D

from tdrl.data.tensor_specs import Composite, TensorSpec
from tdrl.envs.utils import ExplorationType as InteractionType
from tdrl.envs.utils import exploration_type as interaction_type
from tdrl.modules.distributions import Delta
from tdrl.modules.tensordict_module.common import SpecProjector, as_composite, check_safe
from tdrl.modules.tensordict_module.core import (
    TDRLModuleBase,
    normalize_keys,
    read_key,
    set_value,
)
from tdrl.modules.tensordict_module.rng import GeneratorSource, using_generator
from tdrl.modules.tensordict_module.sequence import SafeSequential

__all__ = [
    "SafeProbabilisticModule",
    "SafeProbabilisticTensorDictSequential",
    "draw",
]


def _deterministic(dist: D.Distribution) -> Any:
    value = getattr(dist, "deterministic_sample", None)
    if value is not None:
        return value
    if dist.has_enumerate_support:
        return dist.mode
    try:
        return dist.mean
    except NotImplementedError:
        return dist.mode


def _has_discrete_support(dist: D.Distribution) -> bool:
    try:
        return bool(dist.support.is_discrete)
    except (AttributeError, NotImplementedError, TypeError):  # no (or a broken) support
        return False


def _mean(dist: D.Distribution, n_empirical_estimate: int) -> Any:
    if _has_discrete_support(dist):
        # the mean of a discrete distribution (NaN for torch's Categorical, the probabilities
        # for a one-hot one) is not an action: MEAN writes the mode, a value in the support
        return dist.mode
    try:
        return dist.mean
    except NotImplementedError:  # no closed form: average samples
        return dist.sample((n_empirical_estimate,)).mean(0)


def draw(
    dist: D.Distribution, kind: InteractionType, n_empirical_estimate: int = 1000
) -> torch.Tensor:
    """Draws a value from ``dist`` according to an interaction (exploration) type.

    RANDOM samples (``rsample`` when the distribution has it), MODE and MEDIAN
    read the attribute of that name, MEAN reads ``mean`` (or averages
    ``n_empirical_estimate`` samples when the distribution has no mean; a
    distribution with a discrete support gives its mode, since its mean is
    not a value it can take), DETERMINISTIC reads ``deterministic_sample``
    (else the mode of a discrete distribution or the mean of a continuous one).

    Examples:
        >>> import torch
        >>> from tensordict.nn.probabilistic import InteractionType
        >>> d = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
        >>> draw(d, InteractionType.MEAN)
        tensor([0., 0.])
        >>> draw(torch.distributions.Categorical(logits=torch.tensor([0.0, 2.0])), InteractionType.MEAN)
        tensor(1)
    """
    if kind is InteractionType.RANDOM:
        return dist.rsample() if dist.has_rsample else dist.sample()
    if kind is InteractionType.DETERMINISTIC:
        return _deterministic(dist)
    if kind is InteractionType.MODE:
        return dist.mode
    if kind is InteractionType.MEAN:
        return _mean(dist, n_empirical_estimate)
    if kind is InteractionType.MEDIAN:
        return dist.median
    raise ValueError(
        f"unknown interaction type {kind!r}; valid: {[t.name for t in InteractionType]}"
    )


def _discrete_dtype(spec: Composite | None, key: NestedKey) -> torch.dtype | None:
    """The integer or bool dtype of ``key``'s leaf spec (a discrete draw is cast to it), else None."""
    if spec is None or key not in spec.keys(include_nested=True):
        return None
    leaf = spec[key]
    dtype = getattr(leaf, "dtype", None)
    if isinstance(leaf, Composite) or not isinstance(dtype, torch.dtype):
        return None
    return None if dtype.is_floating_point or dtype.is_complex else dtype


def _joint(dist: D.Distribution) -> Callable[..., tuple[Any, Any]] | None:
    """The distribution's one-pass ``(r)sample_and_log_prob``, if it has one."""
    name = "rsample_and_log_prob" if dist.has_rsample else "sample_and_log_prob"
    return getattr(dist, name, None)


def _composite_sample_keys(kwargs: dict | None) -> list[NestedKey]:
    """The sample keys of a ``CompositeDistribution``: its name map's values, else its map's keys."""
    kwargs = kwargs or {}
    if "distribution_map" not in kwargs:
        raise ValueError(
            "a CompositeDistribution needs distribution_kwargs={'distribution_map': {...}} "
            "(and optionally 'name_map') to name its samples"
        )
    names = list(kwargs["distribution_map"])
    name_map = kwargs.get("name_map") or {}
    return normalize_keys([name_map.get(n, n) for n in names], "out_keys")


class SafeProbabilisticModule(TDRLModuleBase):
    """Reads distribution parameters, builds a distribution and writes a draw from it.

    ``in_keys`` name the distribution's keyword arguments: a list of keys whose
    last element is the argument name (``["loc", "scale"]``), or a dict
    ``{argument: key}``. The drawn value is written under ``out_keys[0]``;
    with ``return_log_prob=True`` its log-probability goes under
    ``log_prob_key`` (``"sample_log_prob"``), computed in the same pass as the
    sample when the distribution offers ``rsample_and_log_prob`` (TanhNormal
    does), so a saturated tanh sample is never inverted. The draw follows the
    current exploration type (``set_exploration_type``), else
    ``default_interaction_type``.

    With a ``tensordict.nn.CompositeDistribution`` the sample is a TensorDict:
    its entries (the ``distribution_map`` names, renamed by ``name_map``) are
    the out_keys, which can be left out; per-entry log-probabilities go under
    the keys the distribution gives them (:attr:`log_prob_keys`).

    Args:
        num_samples: draws per call (an int or a size): the output TensorDict
            is the input expanded to ``(num_samples, *batch)``, a new
            TensorDict that the input does not see; deterministic draws repeat.
        generator: the random generator of RANDOM draws: a ``torch.Generator``
            (advanced in place), an ``int`` seed, or the key of an input entry
            holding a generator or an integer seed (a seed is replaced by the
            next one after the draw). The global generator is left untouched.
        n_empirical_estimate: samples averaged by MEAN when the distribution
            has no closed-form mean (1000).
        cache_dist: only ``False``; ``True`` raises ``NotImplementedError``.

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
        >>> mod = SafeProbabilisticModule(["loc", "scale"], ["action"], distribution_class=TanhNormal,
        ...     default_interaction_type="random", num_samples=5, generator=0)
        >>> mod(td)["action"].shape
        torch.Size([5, 3, 2])
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
        n_empirical_estimate: int = 1000,
        num_samples: int | Sequence[int] | None = None,
        generator: torch.Generator | int | NestedKey | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if cache_dist:
            raise NotImplementedError(
                f"{name}(cache_dist=True) is not supported: the distribution is rebuilt at "
                "every call (get_dist(td) builds it on demand); pass cache_dist=False"
            )
        if int(n_empirical_estimate) < 1:
            raise ValueError(f"{name}: n_empirical_estimate must be >= 1, got {n_empirical_estimate!r}")
        if isinstance(in_keys, dict):
            names = list(in_keys.keys())
            keys = normalize_keys(list(in_keys.values()), "in_keys")
        else:
            keys = normalize_keys(in_keys, "in_keys")
            names = [k if isinstance(k, str) else k[-1] for k in keys]
        if not keys:
            raise ValueError(f"{name} needs in_keys naming the distribution inputs")
        self._arg_names = names
        self.in_keys = keys
        if not (isinstance(distribution_class, type) or callable(distribution_class)):
            raise TypeError(f"distribution_class must be a class, got {distribution_class!r}")
        self._composite = isinstance(distribution_class, type) and issubclass(
            distribution_class, CompositeDistribution
        )
        if out_keys is None:
            out = _composite_sample_keys(distribution_kwargs) if self._composite else ["action"]
        else:
            out = normalize_keys(out_keys, "out_keys")
        if not out:
            raise ValueError(f"{name} needs an out_key for the sample")
        self._sample_keys = out
        self._sample_key = out[0]
        self.log_prob_key = normalize_keys(log_prob_key or "sample_log_prob", "log_prob_key")[0]
        self._return_log_prob = bool(return_log_prob)
        self.default_interaction_type = InteractionType(default_interaction_type)
        self.distribution_class = distribution_class
        # tensors among the kwargs become buffers so that .to(device) moves them
        self._static_kwargs: dict[str, Any] = {}
        self._buffer_kwargs: list[tuple[str, str]] = []
        for arg, value in (distribution_kwargs or {}).items():
            if isinstance(value, torch.Tensor):
                buf = f"_dist_kw_{arg}"
                self.register_buffer(buf, value.clone())
                self._buffer_kwargs.append((arg, buf))
            else:
                self._static_kwargs[arg] = value
        self.spec = as_composite(spec, out)
        check_safe(self.spec, safe, type(self).__name__)
        self.safe = safe
        self._projector = SpecProjector(self.spec if safe else None, out, type(self).__name__)
        self._cast_dtype = None if self._composite else _discrete_dtype(self.spec, out[0])
        self.cache_dist = cache_dist
        self.n_empirical_estimate = int(n_empirical_estimate)
        if num_samples is not None:
            num_samples = torch.Size([num_samples] if isinstance(num_samples, int) else num_samples)
        self.num_samples: torch.Size | None = num_samples
        self._rng = GeneratorSource(generator, name) if generator is not None else None
        self._set_out_keys()

    # what TorchRL's losses read ------------------------------------------------------------
    @property
    def return_log_prob(self) -> bool:
        """Whether the log-probability is written; settable (TorchRL's losses switch it on)."""
        return self._return_log_prob

    @return_log_prob.setter
    def return_log_prob(self, value: bool) -> None:
        self._return_log_prob = bool(value)
        self._set_out_keys()

    @property
    def dist_sample_keys(self) -> list[NestedKey]:
        """The keys the sample is written under."""
        return list(self._sample_keys)

    @property
    def dist_params_keys(self) -> list[NestedKey]:
        """The keys the distribution parameters are read from."""
        return list(self.in_keys)

    @property
    def log_prob_keys(self) -> list[NestedKey]:
        """The keys the log-probabilities are written under (one per sample key for a composite)."""
        if self._composite:
            return [_sibling_log_prob(k) for k in self._sample_keys]
        return [self.log_prob_key]

    def _set_out_keys(self) -> None:
        self.out_keys = self._sample_keys + (self.log_prob_keys if self._return_log_prob else [])

    @property
    def distribution_kwargs(self) -> dict[str, Any]:
        """The keyword arguments passed to ``distribution_class`` besides the read ones."""
        kw = dict(self._static_kwargs)
        for arg, buf in self._buffer_kwargs:
            kw[arg] = getattr(self, buf)
        return kw

    def get_dist(self, tensordict: TensorDictBase) -> D.Distribution:
        """Builds the distribution from the parameters in ``tensordict``."""
        kw = {n: read_key(tensordict, k, self) for n, k in zip(self._arg_names, self.in_keys)}
        if self._static_kwargs:
            kw.update(self._static_kwargs)
        for arg, buf in self._buffer_kwargs:
            kw[arg] = getattr(self, buf)
        return self.distribution_class(**kw)

    build_dist_from_params = get_dist

    def log_prob(self, tensordict: TensorDictBase) -> Any:
        """Log-probability of the value stored under the sample key(s)."""
        dist = self.get_dist(tensordict)
        if self._composite:
            with set_composite_lp_aggregate(False):
                return dist.log_prob(tensordict.select(*self._sample_keys))
        return dist.log_prob(read_key(tensordict, self._sample_key, self))

    def _sample(self, dist: D.Distribution, kind: InteractionType) -> tuple[Any, Any]:
        """``(value, log_prob or None)``: one pass when the distribution can do both."""
        shape = self.num_samples
        if kind is InteractionType.RANDOM:
            joint = _joint(dist) if self._return_log_prob else None
            if joint is not None:
                if self._composite:
                    with set_composite_lp_aggregate(False):
                        return joint(shape or torch.Size())
                return joint(shape or torch.Size())
            if shape is not None:
                return (dist.rsample(shape) if dist.has_rsample else dist.sample(shape)), None
        value = draw(dist, kind, self.n_empirical_estimate)
        if shape is not None and kind is not InteractionType.RANDOM:
            value = value.expand(*shape, *value.shape)
        return value, None

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        dist = self.get_dist(td)
        kind = interaction_type() or self.default_interaction_type
        if self._rng is not None:
            gen, finish = self._rng.resolve(td)
            with using_generator(gen):
                value, log_prob = self._sample(dist, kind)
            finish(td)
        else:
            value, log_prob = self._sample(dist, kind)
        if self.num_samples is not None:
            td = td.expand(*self.num_samples, *td.batch_size)
        if self._composite:
            return self._write_composite(td, dist, value, log_prob)
        if self._return_log_prob and log_prob is None:
            log_prob = dist.log_prob(value)
        cast = self._cast_dtype
        if cast is not None and value.dtype != cast and not value.dtype.is_floating_point:
            value = value.to(cast)  # an int64 draw written in the spec's dtype (e.g. bool one-hot)
        if self._projector:
            value = self._projector.project(*self._projector.pairs[0], value)
        set_value(td, self._sample_key, value)
        if self._return_log_prob:
            set_value(td, self.log_prob_key, log_prob)
        return td

    def _write_composite(
        self, td: TensorDictBase, dist: D.Distribution, value: TensorDictBase, log_prob: Any
    ) -> TensorDictBase:
        td.update(value.select(*self._sample_keys, strict=False))
        if self._return_log_prob:
            if log_prob is None:
                with set_composite_lp_aggregate(False):
                    log_prob = dist.log_prob(value)
            td.update(log_prob.select(*self.log_prob_keys, strict=False))
        if self._projector:
            self._projector(td)
        return td

    def extra_repr(self) -> str:
        return (
            f"in_keys={self.in_keys}, out_keys={self.out_keys}, "
            f"distribution_class={getattr(self.distribution_class, '__name__', self.distribution_class)}"
        )


def _sibling_log_prob(key: NestedKey) -> NestedKey:
    """``"normal" -> "normal_log_prob"``, ``("a", "b") -> ("a", "b_log_prob")`` (tensordict's naming)."""
    if isinstance(key, tuple):
        return (*key[:-1], f"{key[-1]}_log_prob")
    return f"{key}_log_prob"


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

    # what TorchRL's losses read from an actor: the probabilistic head's keys and switches
    @property
    def return_log_prob(self) -> bool:
        """Whether the head writes the log-probability; settable (the key plan follows)."""
        return self.module[-1].return_log_prob

    @return_log_prob.setter
    def return_log_prob(self, value: bool) -> None:
        self.module[-1].return_log_prob = value
        self._rebuild()

    @property
    def log_prob_key(self) -> NestedKey:
        """The head's log-probability key."""
        return self.module[-1].log_prob_key

    @property
    def log_prob_keys(self) -> list[NestedKey]:
        """The head's log-probability keys."""
        return self.module[-1].log_prob_keys

    @property
    def dist_sample_keys(self) -> list[NestedKey]:
        """The keys the head writes its sample under."""
        return self.module[-1].dist_sample_keys

    @property
    def dist_params_keys(self) -> list[NestedKey]:
        """The keys the head reads the distribution parameters from."""
        return self.module[-1].dist_params_keys

    def build_dist_from_params(self, tensordict: TensorDictBase) -> D.Distribution:
        """The head's distribution from parameters already in ``tensordict`` (no network run)."""
        return self.module[-1].get_dist(tensordict)
