"""Ordinal distributions: categoricals over an ordered set (Tang & Agrawal, 2020, §5).

A plain categorical treats its ``N`` atoms as unrelated labels. An ordinal one is built from
``N`` scores ``s_0 .. s_{N-1}`` so that neighbouring atoms share most of their logit: the
logit of atom ``k`` is ``sum_{j <= k} log sigmoid(s_j) + sum_{j > k} log sigmoid(-s_j)``
(Eq. 4 of `arXiv:1901.10500 <https://arxiv.org/abs/1901.10500>`_). Since
``log sigmoid(s) - log sigmoid(-s) = s``, consecutive logits differ by exactly the score
of the upper atom: ``p_{k+1} / p_k = exp(s_{k+1})``. This is useful for a discretised
continuous action, where "one bin further" should mean "a little less likely", not
"unrelated".

Examples:
    >>> import torch
    >>> from tdrl.modules import Ordinal
    >>> d = Ordinal(scores=torch.zeros(2, 5))
    >>> d.sample().shape, torch.allclose(d.probs.sum(-1), torch.ones(2))
    (torch.Size([2]), True)
    >>> p = Ordinal(scores=torch.tensor([0.0, 1.0, 1.0])).probs
    >>> torch.allclose(p[1:] / p[:-1], torch.tensor([1.0, 1.0]).exp())
    True
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch import distributions as D

from tdrl.modules.distributions.bounds import _is_compiling
from tdrl.modules.distributions.discrete import OneHotCategorical

__all__ = ["OneHotOrdinal", "Ordinal", "_generate_ordinal_logits"]


def _generate_ordinal_logits(scores: Tensor) -> Tensor:
    """The ordinal logits of ``scores`` (shape ``[..., N]``), Eq. 4 of Tang & Agrawal (2020).

    Computed as an inclusive cumulative sum of ``log sigmoid(s)`` plus an *exclusive*
    reversed cumulative sum of ``log sigmoid(-s)``. Every term is ``<= 0`` and no
    subtraction of large values happens, so scores as large as ``finfo.max`` give finite
    logits and finite gradients.

    Examples:
        >>> import torch
        >>> _generate_ordinal_logits(torch.ones(4))
        tensor([-4.2530, -3.2530, -2.2530, -1.2530])
    """
    up = F.logsigmoid(scores).cumsum(-1)
    down = F.logsigmoid(-scores)
    # sum over j > k of down_j: reverse cumsum, shifted by one (last atom gets 0)
    tail = down.flip(-1).cumsum(-1).flip(-1)
    tail = torch.cat([tail[..., 1:], torch.zeros_like(tail[..., :1])], -1)
    return up + tail


def _checked_logits(scores: Tensor, cls: str) -> Tensor:
    if not isinstance(scores, Tensor):
        raise TypeError(f"{cls}: scores must be a torch.Tensor, got {type(scores).__name__}")
    if scores.ndim == 0 or scores.shape[-1] == 0:
        raise ValueError(
            f"{cls}: scores must have shape [..., N] with N >= 1 atoms, got shape "
            f"{tuple(scores.shape)}"
        )
    if not scores.is_floating_point():
        raise TypeError(f"{cls}: scores must be a floating tensor, got dtype {scores.dtype}")
    if not _is_compiling():
        bad = torch.isnan(scores)
        if bool(bad.any()):
            raise ValueError(
                f"{cls}: scores contain NaN ({int(bad.sum())} of {scores.numel()} entries)"
            )
    return _generate_ordinal_logits(scores)


class Ordinal(D.Categorical):
    """A categorical distribution over ``N`` ordered atoms, parametrised by ``N`` scores.

    Samples are indices in ``[0, N)`` of shape ``scores.shape[:-1]``; ``log_prob``,
    ``entropy``, ``probs`` and ``logits`` are those of :class:`torch.distributions.Categorical`
    built on the ordinal logits (see the module docstring). NaN scores raise ``ValueError``.

    Args:
        scores: tensor of shape ``[..., N]`` (typically a network's output).

    Examples:
        >>> import torch
        >>> from tdrl.modules import Ordinal
        >>> scores = torch.tensor([[2.0, 2.0, 2.0], [-2.0, -2.0, -2.0]])
        >>> Ordinal(scores=scores).probs.argmax(-1)   # high scores favour the top atom
        tensor([2, 0])
        >>> Ordinal(scores=torch.tensor([0.0, float("nan")]))
        Traceback (most recent call last):
        ...
        ValueError: Ordinal: scores contain NaN (1 of 2 entries)
    """

    def __init__(self, scores: Tensor) -> None:
        super().__init__(logits=_checked_logits(scores, "Ordinal"), validate_args=False)

    @property
    def deterministic_sample(self) -> Tensor:
        """The most likely atom (the mode)."""
        return self.mode


class OneHotOrdinal(OneHotCategorical):
    """:class:`Ordinal` with one-hot samples of shape ``scores.shape`` (tdrl's OneHotCategorical).

    Args:
        scores: tensor of shape ``[..., N]``.

    Examples:
        >>> import torch
        >>> from tdrl.modules import OneHotOrdinal
        >>> d = OneHotOrdinal(scores=torch.zeros(3, 4))
        >>> s = d.sample()
        >>> s.shape, s.sum(-1).tolist(), d.log_prob(s).shape
        (torch.Size([3, 4]), [1, 1, 1], torch.Size([3]))
    """

    def __init__(self, scores: Tensor) -> None:
        super().__init__(logits=_checked_logits(scores, "OneHotOrdinal"))
