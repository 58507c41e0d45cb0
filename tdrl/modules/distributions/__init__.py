"""Distributions for tdrl actors, in the style of :mod:`torch.distributions`.

Continuous (:mod:`~tdrl.modules.distributions.continuous`): ``TanhNormal``,
``IndependentNormal``, ``TruncatedNormal``, ``Delta``, ``TanhDelta`` and
tensordict's ``NormalParamExtractor``. Discrete
(:mod:`~tdrl.modules.distributions.discrete`, ``IndexCategorical`` in
:mod:`~tdrl.modules.distributions.categorical`): ``OneHotCategorical``,
``MaskedCategorical``, ``MaskedOneHotCategorical``; ordinal
(:mod:`~tdrl.modules.distributions.ordinal`): ``Ordinal``, ``OneHotOrdinal``.

Every class subclasses :class:`torch.distributions.Distribution` and has a
``deterministic_sample`` attribute.

Parameter checks (``TanhNormal``, ``IndependentNormal``, ``TruncatedNormal``):
``scale`` must be ``> 0`` and ``loc`` free of NaN, else a ``ValueError`` names
the parameter, the count, the bad values and the first index. ``validate_args=True``
always checks, ``False`` never does; the default (``None``) checks while autograd
records, i.e. in every loss computation, before a NaN can reach the gradients,
and skips under ``torch.no_grad()``/``inference_mode`` (data collection), where
the check's device sync would cost about 6% per call at batch 1. Nothing is
checked under ``torch.compile``. (torch's global ``set_default_validate_args`` is
not read: the first ``torch.compile`` of a process turns it off.)

Examples:
    >>> import torch
    >>> from tdrl.modules.distributions import TanhNormal
    >>> d = TanhNormal(torch.zeros(4), torch.ones(4))
    >>> isinstance(d, torch.distributions.Distribution), d.event_shape
    (True, torch.Size([4]))
    >>> TanhNormal(torch.zeros(3), torch.tensor([1.0, 0.0, float("nan")]))
    Traceback (most recent call last):
    ...
    ValueError: TanhNormal: scale must be > 0 (and not NaN) everywhere, got 2 bad entries of 3: values [0.0, nan], first at index [1] (pass validate_args=False to skip this check)
"""
from tdrl.modules.distributions.categorical import IndexCategorical
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
from tdrl.modules.distributions.ordinal import OneHotOrdinal, Ordinal
from tdrl.modules.distributions.removed import NormalParamWrapper

__all__ = [
    "Delta",
    "IndependentNormal",
    "IndexCategorical",
    "MaskedCategorical",
    "MaskedOneHotCategorical",
    "NormalParamExtractor",
    "NormalParamWrapper",
    "OneHotCategorical",
    "OneHotOrdinal",
    "Ordinal",
    "ReparamGradientStrategy",
    "TanhDelta",
    "TanhNormal",
    "TruncatedNormal",
]
