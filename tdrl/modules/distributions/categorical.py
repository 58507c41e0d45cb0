"""Index-valued categorical normalized by ``log_softmax``, and the shared categorical setup.

:class:`torch.distributions.Categorical` normalizes its logits as
``logits - logsumexp``; every tdrl categorical (:class:`IndexCategorical` here,
the one-hot and masked ones in :mod:`~tdrl.modules.distributions.discrete`)
uses ``log_softmax`` instead: equal values to float rounding, and one kernel
forward and one backward where ``logsumexp`` runs about ten.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch import distributions as D

__all__ = ["IndexCategorical"]


def _check_params(logits: Tensor | None, probs: Tensor | None, cls: str) -> None:
    if (logits is None) == (probs is None):
        raise ValueError(
            f"{cls}: Either `probs` or `logits` must be specified, but not both (got "
            f"{'both' if logits is not None else 'neither'})"
        )
    t = logits if logits is not None else probs
    if not isinstance(t, Tensor):
        raise TypeError(f"{cls}: logits/probs must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim == 0:
        raise ValueError(f"{cls}: logits/probs need at least one dim (the categories), got a scalar")


def _init_log_softmax(dist: D.Categorical, probs: Tensor | None, logits: Tensor | None,
                      validate_args: bool | None) -> None:
    """``D.Categorical.__init__`` with the logits normalized by ``log_softmax``.

    torch normalizes with ``logits - logsumexp``: about ten kernels forward and backward where
    ``log_softmax`` runs one each way (equal values to a few ulps). ``probs`` take torch's path.
    """
    if logits is None or probs is not None:
        D.Categorical.__init__(dist, probs=probs, logits=logits, validate_args=validate_args)
        return
    if logits.dim() < 1:
        raise ValueError(
            f"{type(dist).__name__}: logits need at least one dim (the categories), got a scalar"
        )
    dist.logits = dist._param = logits.log_softmax(-1)
    dist._num_events = logits.shape[-1]
    D.Distribution.__init__(dist, logits.shape[:-1], validate_args=validate_args)


class IndexCategorical(D.Categorical):
    """:class:`torch.distributions.Categorical` (index values), normalized by ``log_softmax``.

    The same draws as torch's class (``multinomial`` on the softmax) and the same
    ``log_prob`` / ``entropy`` (a gather of the normalized logits); only the
    normalization differs (``log_softmax``: one kernel each way, where torch's
    ``logits - logsumexp`` runs about ten), so values agree to float rounding.
    Adds ``deterministic_sample`` (the mode). ``tdrl train ppo`` uses it for
    ``--discrete-dist categorical``.

    Args:
        probs (Tensor, optional): probabilities; exactly one of ``probs`` and ``logits``.
        logits (Tensor, optional): unnormalized log-probabilities (last dim = categories).
        validate_args (bool, optional): torch's argument validation.

    Examples:
        >>> import torch
        >>> d = IndexCategorical(logits=torch.tensor([[0.0, 2.0, 1.0]]))
        >>> d.deterministic_sample, d.sample().shape
        (tensor([1]), torch.Size([1]))
        >>> ref = torch.distributions.Categorical(logits=torch.tensor([[0.0, 2.0, 1.0]]))
        >>> torch.allclose(d.log_prob(torch.tensor([2])), ref.log_prob(torch.tensor([2])))
        True
    """

    def __init__(self, probs: Tensor | None = None, logits: Tensor | None = None,
                 validate_args: bool | None = None) -> None:
        _check_params(logits, probs, type(self).__name__)
        _init_log_softmax(self, probs, logits, validate_args)

    @property
    def deterministic_sample(self) -> Tensor:
        """The mode."""
        return self.mode

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> IndexCategorical:
        shape = torch.Size(batch_shape) + (self._num_events,)
        return IndexCategorical(logits=self.logits.expand(shape), validate_args=False)
