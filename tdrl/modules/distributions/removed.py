"""``NormalParamWrapper``: removed by TorchRL; kept so old code fails with a pointer.

Examples:
    >>> from tdrl.modules import NormalParamWrapper
    >>> NormalParamWrapper(None)
    Traceback (most recent call last):
    ...
    RuntimeError: NormalParamWrapper is no longer available (TorchRL removed it): append tensordict.nn.NormalParamExtractor() to the network instead, e.g. nn.Sequential(net, NormalParamExtractor()), which splits its last dimension into loc and a positive scale
"""
from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["NormalParamWrapper"]


class NormalParamWrapper(nn.Module):
    """Removed: use ``tensordict.nn.NormalParamExtractor`` after the network (raises on use)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            "NormalParamWrapper is no longer available (TorchRL removed it): append "
            "tensordict.nn.NormalParamExtractor() to the network instead, e.g. "
            "nn.Sequential(net, NormalParamExtractor()), which splits its last dimension "
            "into loc and a positive scale"
        )
