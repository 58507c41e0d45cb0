"""Continuous distributions, at TorchRL's ``modules.distributions.continuous`` path.

Each lives in its own module (:mod:`.tanh_normal`, :mod:`.normal`,
:mod:`.truncated_normal`, :mod:`.delta`); this module re-exports them with
:class:`SafeTanhTransform` and tensordict's ``NormalParamExtractor``. All
subclass :class:`torch.distributions.Distribution`, create every tensor on the
device and in the dtype of their parameters, and expose ``deterministic_sample``
(read by tensordict's probabilistic modules under ``InteractionType.DETERMINISTIC``).
"""
from __future__ import annotations

import torch
from tensordict.nn import NormalParamExtractor

from tdrl.modules.distributions.delta import Delta, TanhDelta
from tdrl.modules.distributions.normal import IndependentNormal
from tdrl.modules.distributions.removed import NormalParamWrapper
from tdrl.modules.distributions.safe_tanh import SafeTanhTransform
from tdrl.modules.distributions.tanh_normal import TanhNormal
from tdrl.modules.distributions.truncated_normal import TruncatedNormal

__all__ = [
    "TORCH_VERSION_PRE_2_6",
    "Delta",
    "IndependentNormal",
    "NormalParamExtractor",
    "NormalParamWrapper",
    "SafeTanhTransform",
    "TanhDelta",
    "TanhNormal",
    "TruncatedNormal",
]


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split("+")[0].split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


#: True on torch < 2.6 (TorchRL's flag; tdrl's ``safe_tanh`` compiles on every version).
TORCH_VERSION_PRE_2_6: bool = _version_tuple(torch.__version__) < (2, 6)
