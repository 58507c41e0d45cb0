"""Cutting a ``[B, T]`` batch into trajectories at its ``is_init`` marks, and putting it back.

A row of a recurrent-mode batch may hold the tail of one trajectory and the
starts of others: ``is_init[b, t]`` is True where a trajectory starts. A
*segment* is a maximal run of steps of one row with no start inside it except
its first step; every row's step 0 starts a segment. Segments never cross rows.

:func:`segments` computes, once per batch, where each step goes in a
``[N, L]`` layout (``N`` segments, ``L`` the longest), so a fused
``nn.LSTM`` / ``nn.GRU`` call can run every segment from its own initial state
and report each segment's own final state (through a packed sequence).

Examples:
    >>> import torch
    >>> is_init = torch.tensor([[False, False, True, False], [True, False, False, False]])
    >>> seg = segments(is_init)
    >>> seg.lengths.tolist(), seg.starts.tolist(), seg.ends.tolist()
    ([2, 2, 4], [0, 2, 4], [1, 3, 7])
    >>> end_mask(is_init).int().tolist()
    [[0, 1, 0, 1], [0, 0, 0, 1]]
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["Segments", "segments", "end_mask", "to_segments", "from_segments"]


class Segments(NamedTuple):
    """Where each step of a ``[B, T]`` batch sits in the ``[N, L]`` segment layout.

    ``seg`` / ``pos``: segment index and position in it of each flat step
    (``B * T``); ``starts`` / ``ends``: flat index of each segment's first and
    last step; ``lengths``: steps per segment; ``longest``: ``L``.
    """

    seg: Tensor
    pos: Tensor
    starts: Tensor
    ends: Tensor
    lengths: Tensor
    longest: int


def segments(is_init: Tensor) -> Segments:
    """The segment layout of a ``[B, T]`` boolean ``is_init`` (see the module docstring).

    Examples:
        >>> segments(torch.tensor([[False, True, False]])).pos.tolist()
        [0, 0, 1]
    """
    b, t = is_init.shape
    starts_mask = is_init.clone()
    starts_mask[:, 0] = True
    flat = starts_mask.reshape(-1)
    seg = flat.cumsum(0) - 1
    starts = flat.nonzero().squeeze(1)
    total = torch.full((1,), b * t, device=starts.device, dtype=starts.dtype)
    lengths = torch.diff(starts, append=total)
    pos = torch.arange(b * t, device=starts.device) - starts[seg]
    return Segments(seg, pos, starts, starts + lengths - 1, lengths, int(lengths.max()))


def end_mask(is_init: Tensor) -> Tensor:
    """``[B, T]``: True at each step after which its trajectory does not continue in the row.

    That is the step before every ``is_init`` mark, and the row's last step.

    Examples:
        >>> end_mask(torch.tensor([[True, False, True]])).tolist()
        [[False, True, True]]
    """
    last = torch.ones_like(is_init[:, :1])
    return torch.cat([is_init[:, 1:], last], 1)


def to_segments(values: Tensor, seg: Segments) -> Tensor:
    """``[B * T, *F]`` flat steps -> ``[N, L, *F]``, zero-padded after each segment's end.

    Examples:
        >>> s = segments(torch.tensor([[False, True, False]]))
        >>> to_segments(torch.tensor([1.0, 2.0, 3.0]), s).tolist()
        [[1.0, 0.0], [2.0, 3.0]]
    """
    out = values.new_zeros(seg.lengths.numel(), seg.longest, *values.shape[1:])
    out[seg.seg, seg.pos] = values
    return out


def from_segments(values: Tensor, seg: Segments) -> Tensor:
    """``[N, L, *F]`` -> ``[B * T, *F]``: the inverse of :func:`to_segments` (padding dropped).

    Examples:
        >>> s = segments(torch.tensor([[False, True, False]]))
        >>> from_segments(torch.tensor([[1.0, 0.0], [2.0, 3.0]]), s).tolist()
        [1.0, 2.0, 3.0]
    """
    return values[seg.seg, seg.pos]
