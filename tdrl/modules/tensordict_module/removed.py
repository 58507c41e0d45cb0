"""Names TorchRL removed, kept so that old code fails with a pointer to the replacement.

``EGreedyWrapper``, ``AdditiveGaussianWrapper`` and ``OrnsteinUhlenbeckProcessWrapper``
wrapped a policy; TorchRL replaced each with a module placed *after* the policy (in a
``TensorDictSequential``). Constructing one raises ``RuntimeError`` naming that module.

Examples:
    >>> from tdrl.modules import EGreedyWrapper
    >>> EGreedyWrapper(None)
    Traceback (most recent call last):
    ...
    RuntimeError: EGreedyWrapper is no longer available (TorchRL removed it): use tdrl.modules.EGreedyModule instead, placed after the policy, e.g. TensorDictSequential(policy, EGreedyModule(spec))
"""
from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["AdditiveGaussianWrapper", "EGreedyWrapper", "OrnsteinUhlenbeckProcessWrapper"]


def _removed(old: str, new: str, example: str) -> RuntimeError:
    return RuntimeError(
        f"{old} is no longer available (TorchRL removed it): use tdrl.modules.{new} instead, "
        f"placed after the policy, e.g. {example}"
    )


class EGreedyWrapper(nn.Module):
    """Removed: use :class:`~tdrl.modules.EGreedyModule` after the policy (raises on use)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _removed(
            "EGreedyWrapper", "EGreedyModule", "TensorDictSequential(policy, EGreedyModule(spec))"
        )


class AdditiveGaussianWrapper(nn.Module):
    """Removed: use :class:`~tdrl.modules.AdditiveGaussianModule` after the policy (raises on use).

    Examples:
        >>> AdditiveGaussianWrapper(None)
        Traceback (most recent call last):
        ...
        RuntimeError: AdditiveGaussianWrapper is no longer available (TorchRL removed it): use tdrl.modules.AdditiveGaussianModule instead, placed after the policy, e.g. TensorDictSequential(policy, AdditiveGaussianModule(spec))
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _removed(
            "AdditiveGaussianWrapper",
            "AdditiveGaussianModule",
            "TensorDictSequential(policy, AdditiveGaussianModule(spec))",
        )


class OrnsteinUhlenbeckProcessWrapper(nn.Module):
    """Removed: use :class:`~tdrl.modules.OrnsteinUhlenbeckProcessModule` after the policy.

    Examples:
        >>> OrnsteinUhlenbeckProcessWrapper(None)
        Traceback (most recent call last):
        ...
        RuntimeError: OrnsteinUhlenbeckProcessWrapper is no longer available (TorchRL removed it): use tdrl.modules.OrnsteinUhlenbeckProcessModule instead, placed after the policy, e.g. TensorDictSequential(policy, OrnsteinUhlenbeckProcessModule(spec))
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _removed(
            "OrnsteinUhlenbeckProcessWrapper",
            "OrnsteinUhlenbeckProcessModule",
            "TensorDictSequential(policy, OrnsteinUhlenbeckProcessModule(spec))",
        )
