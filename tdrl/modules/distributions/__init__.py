"""Distributions for tdrl actors, in the style of :mod:`torch.distributions`.

Continuous (:mod:`~tdrl.modules.distributions.continuous`): ``TanhNormal``,
``IndependentNormal``, ``TruncatedNormal``, ``Delta``, ``TanhDelta`` and
tensordict's ``NormalParamExtractor``. Discrete
(:mod:`~tdrl.modules.distributions.discrete`): ``OneHotCategorical``,
``MaskedCategorical``, ``MaskedOneHotCategorical``.

Every class subclasses :class:`torch.distributions.Distribution` and has a
``deterministic_sample`` attribute.

Examples:
    >>> import torch
    >>> from tdrl.modules.distributions import TanhNormal
    >>> d = TanhNormal(torch.zeros(4), torch.ones(4))
    >>> isinstance(d, torch.distributions.Distribution), d.event_shape
    (True, torch.Size([4]))
"""
from tdrl.modules.distributions.continuous import (
    Delta,
    IndependentNormal,
    NormalParamExtractor,
    TanhDelta,
    TanhNormal,
    TruncatedNormal,
)
from tdrl.modules.distributions.discrete import (
    MaskedCategorical,
    MaskedOneHotCategorical,
    OneHotCategorical,
    ReparamGradientStrategy,
)

__all__ = [
    "Delta",
    "IndependentNormal",
    "MaskedCategorical",
    "MaskedOneHotCategorical",
    "NormalParamExtractor",
    "OneHotCategorical",
    "ReparamGradientStrategy",
    "TanhDelta",
    "TanhNormal",
    "TruncatedNormal",
]
