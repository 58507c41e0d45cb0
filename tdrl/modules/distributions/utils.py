"""Helpers around the distributions, at TorchRL's ``modules.distributions.utils`` path.

- :func:`sample_and_log_prob` / :func:`rsample_and_log_prob`: draw once and
  score that very draw (``TanhNormal`` scores its pre-tanh value exactly),
  also component by component for a tensordict ``CompositeDistribution``.
- :func:`composite_entropy`: per-component entropies of a ``CompositeDistribution``.
- :func:`safetanh` / :func:`safeatanh` and friends (from
  :mod:`~tdrl.modules.distributions.safe_tanh`) and the bounds helpers (from
  :mod:`~tdrl.modules.distributions.bounds`), re-exported here.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase, is_tensor_collection
from tensordict.nn import CompositeDistribution, composite_lp_aggregate
from torch import Tensor
from torch import distributions as D

from tdrl.modules.distributions.bounds import BoundedSupportMixin, Bounds, get_bounds
from tdrl.modules.distributions.safe_tanh import (
    LOG_2,
    LOG_SQRT_2PI,
    SafeTanhTransform,
    log1m_tanh_sq,
    safeatanh,
    safeatanh_noeps,
    safetanh,
    safetanh_noeps,
    tanh_limit,
)

__all__ = [
    "LOG_2",
    "LOG_SQRT_2PI",
    "BoundedSupportMixin",
    "Bounds",
    "SafeTanhTransform",
    "composite_entropy",
    "get_bounds",
    "log1m_tanh_sq",
    "rsample_and_log_prob",
    "safeatanh",
    "safeatanh_noeps",
    "safetanh",
    "safetanh_noeps",
    "sample_and_log_prob",
    "tanh_limit",
]

def _suffixed(name: Any, suffix: str) -> Any:
    """``"a" -> "a_suffix"``, ``("a", "b") -> ("a", "b_suffix")``."""
    if isinstance(name, str):
        return name + suffix
    return (*name[:-1], name[-1] + suffix)


def _aggregate(parts: dict, batch_ndim: int) -> Tensor:
    """Sum of per-component tensors, each first reduced to its leading ``batch_ndim`` dims."""
    total: Tensor | float = 0.0
    for part in parts.values():
        if is_tensor_collection(part):
            part = part.sum(dim="feature", reduce=True)
        elif part.ndim > batch_ndim:
            part = part.flatten(batch_ndim, -1).sum(-1)
        total = total + part
    return total


def sample_and_log_prob(
    distribution: D.Distribution,
    sample_shape: Sequence[int] = (),
    *,
    reparameterize: bool = False,
) -> tuple[Any, Tensor | TensorDictBase]:
    """Draw once and return ``(sample, log-prob of that very draw)``.

    Uses the distribution's own ``sample_and_log_prob`` (or
    ``rsample_and_log_prob`` with ``reparameterize=True``) when it has one,
    so that e.g. a ``TanhNormal`` draw is scored from its exact pre-tanh value;
    otherwise samples and calls ``log_prob``. A tensordict
    ``CompositeDistribution`` is handled component by component: the sample is
    a TensorDict, and the log-prob a TensorDict of ``<name>_log_prob`` entries
    or, under ``composite_lp_aggregate()``, their sum over the feature dims.

    Args:
        distribution (Distribution): the distribution.
        sample_shape (sequence of int, optional): leading sample dims. Defaults to ``()``.

    Keyword Args:
        reparameterize (bool, optional): draw with ``rsample`` (pathwise
            gradient). Defaults to ``False``.

    Examples:
        >>> from tdrl.modules.distributions import TanhNormal
        >>> d = TanhNormal(torch.tensor([20.0, -20.0]), torch.full((2,), 0.1))
        >>> a, lp = sample_and_log_prob(d, (3,))
        >>> a.shape, lp.shape, bool(torch.isfinite(lp).all())
        (torch.Size([3, 2]), torch.Size([3]), True)
        >>> x, lp = sample_and_log_prob(torch.distributions.Normal(0.0, 1.0))
        >>> torch.allclose(lp, torch.distributions.Normal(0.0, 1.0).log_prob(x))
        True
    """
    sample_shape = torch.Size(sample_shape)
    if isinstance(distribution, CompositeDistribution):
        samples, log_probs = {}, {}
        for name, part in distribution.dists.items():
            samples[name], log_probs[_suffixed(name, "_log_prob")] = sample_and_log_prob(
                part, sample_shape, reparameterize=reparameterize
            )
        batch_size = sample_shape + distribution.batch_shape
        sample = TensorDict(samples, batch_size=batch_size)
        if not composite_lp_aggregate():
            return sample, TensorDict(log_probs, batch_size=batch_size)
        return sample, _aggregate(log_probs, len(batch_size))
    joint = getattr(
        distribution, "rsample_and_log_prob" if reparameterize else "sample_and_log_prob", None
    )
    if joint is not None:
        return joint(sample_shape)
    sample = (distribution.rsample if reparameterize else distribution.sample)(sample_shape)
    if isinstance(sample, Tensor) or is_tensor_collection(sample):
        return sample, distribution.log_prob(sample)
    return sample, distribution.log_prob(*sample)


def rsample_and_log_prob(
    distribution: D.Distribution, sample_shape: Sequence[int] = ()
) -> tuple[Any, Tensor | TensorDictBase]:
    """:func:`sample_and_log_prob` with ``reparameterize=True`` (a pathwise-differentiable draw).

    Examples:
        >>> from tdrl.modules.distributions import TanhNormal
        >>> loc = torch.zeros(2, requires_grad=True)
        >>> a, lp = rsample_and_log_prob(TanhNormal(loc, torch.ones(2)))
        >>> a.requires_grad, lp.shape
        (True, torch.Size([]))
    """
    return sample_and_log_prob(distribution, sample_shape, reparameterize=True)


def composite_entropy(
    distribution: CompositeDistribution, samples_mc: int = 1
) -> Tensor | TensorDictBase:
    """Entropy of each component of a tensordict ``CompositeDistribution``.

    A component's own ``entropy()`` is used when it has one; otherwise
    ``-mean(log_prob)`` over ``samples_mc`` draws scored by
    :func:`rsample_and_log_prob` (no inverse map). Returns a TensorDict of
    ``<name>_entropy`` entries, or their sum over the feature dims under
    ``composite_lp_aggregate()``.

    Args:
        distribution (CompositeDistribution): the distribution.
        samples_mc (int, optional): Monte-Carlo draws for components without an
            entropy. Defaults to ``1``.

    Examples:
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import CompositeDistribution, set_composite_lp_aggregate
        >>> params = TensorDict(
        ...     {"a": {"loc": torch.zeros(2, 3), "scale": torch.ones(2, 3)}}, batch_size=[2])
        >>> d = CompositeDistribution(params, distribution_map={"a": torch.distributions.Normal})
        >>> with set_composite_lp_aggregate(False):
        ...     h = composite_entropy(d)
        >>> h["a_entropy"].shape
        torch.Size([2, 3])
    """
    entropies = {}
    for name, part in distribution.dists.items():
        try:
            h = part.entropy()
        except NotImplementedError:
            if not part.has_rsample:
                raise
            h = -rsample_and_log_prob(part, (samples_mc,))[1].mean(0)
        entropies[_suffixed(name, "_entropy")] = h
    if not composite_lp_aggregate():
        return TensorDict(entropies, batch_size=distribution.batch_shape)
    return _aggregate(entropies, len(distribution.batch_shape))
