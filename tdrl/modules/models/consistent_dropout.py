"""Consistent dropout (Hausknecht & Wagener 2022), as TorchRL's ``ConsistentDropout`` / ``...Module``.

The dropout mask drawn while acting is stored with the transition and reused
when the same transition is replayed in the update, so the policy that is
optimised is the one that acted. Unlike the exploration layers, it follows
``train()`` / ``eval()`` as ``nn.Dropout`` does.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from tdrl.modules.tensordict_module.core import TDRLModuleBase, normalize_keys, read_key

__all__ = ["ConsistentDropout", "ConsistentDropoutModule"]


def _broadcast_to(a: torch.Size, b: torch.Size) -> torch.Size | None:
    try:
        return torch.broadcast_shapes(a, b)
    except RuntimeError:
        return None


def _check_p(p: float) -> float:
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout p must be in [0, 1), got p={p}")
    return float(p)


class ConsistentDropout(nn.Module):
    """Dropout whose mask can be passed in: ``(x, mask=None) -> (x * mask, mask)`` in training.

    Without a mask one is drawn (entries 0 with probability ``p``, else
    ``1 / (1 - p)``); with one, it is reused. In eval mode the input is returned
    unchanged (a tensor, not a tuple).

    Args:
        p: the drop probability, in ``[0, 1)`` (default 0.5).

    Examples:
        >>> import torch
        >>> from tdrl.modules import ConsistentDropout
        >>> drop = ConsistentDropout(p=0.5)
        >>> y, mask = drop(torch.ones(2, 4))
        >>> torch.equal(drop(torch.ones(2, 4), mask=mask)[0], y)   # same mask, same output
        True
        >>> torch.equal(drop.eval()(torch.ones(2, 4)), torch.ones(2, 4))
        True
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = _check_p(p)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not self.training:
            return x
        if mask is None:
            mask = self.make_mask(input=x)
        elif _broadcast_to(mask.shape, x.shape) != x.shape:
            raise ValueError(
                f"ConsistentDropout: mask of shape {tuple(mask.shape)} does not fit the input "
                f"of shape {tuple(x.shape)}"
            )
        return x * mask, mask

    def make_mask(
        self, *, input: torch.Tensor | None = None, shape: Sequence[int] | None = None
    ) -> torch.Tensor:
        """A fresh mask shaped like ``input`` (or ``shape``).

        Examples:
            >>> from tdrl.modules import ConsistentDropout
            >>> ConsistentDropout(p=0.0).make_mask(shape=(2,))
            tensor([1., 1.])
        """
        if input is not None:
            ones = torch.ones_like(input)
        elif shape is not None:
            ones = torch.ones(tuple(shape))
        else:
            raise RuntimeError("ConsistentDropout.make_mask needs input= or shape=")
        return F.dropout(ones, self.p, training=True)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ConsistentDropoutModule(TDRLModuleBase):
    """Consistent dropout as a tensordict module: reads the input and its mask, writes both.

    Args:
        p: the drop probability, in ``[0, 1)``.
        in_keys: the input key, or ``[input_key, mask_key]``; with one key the mask
            key is ``"mask_<id>"`` (unique to this module).
        out_keys: ``[output_key, mask_key]`` or one output key (default: ``in_keys``).
        input_shape, input_dtype: the shape and dtype of one input, kept for building
            a reset primer (TorchRL's ``make_tensordict_primer``; tdrl has no env transforms).

    In training a missing mask is drawn and written; a present one is reused. In
    eval mode only the output is written (the input unchanged).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.modules import ConsistentDropoutModule
        >>> m = ConsistentDropoutModule(p=0.5, in_keys=["x", "mask"])
        >>> td = m(TensorDict(x=torch.ones(3, 4), batch_size=[3]))
        >>> sorted(td.keys()), torch.equal(td["x"], td["mask"])
        (['mask', 'x'], True)
        >>> again = m(TensorDict(x=torch.ones(3, 4), mask=td["mask"], batch_size=[3]))
        >>> torch.equal(again["x"], td["x"])
        True
    """

    def __init__(
        self,
        p: float,
        in_keys: NestedKey | Sequence[NestedKey],
        out_keys: NestedKey | Sequence[NestedKey] | None = None,
        input_shape: Sequence[int] | None = None,
        input_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        mask_key = f"mask_{id(self)}"
        ins = normalize_keys(in_keys, "in_keys")
        if len(ins) == 1:
            ins.append(mask_key)
        outs = list(ins) if out_keys is None else normalize_keys(out_keys, "out_keys")
        if len(outs) == 1:
            outs.append(ins[1])
        if len(ins) != 2 or len(outs) != 2:
            raise ValueError(
                "in_keys and out_keys length must be 2 for consistent dropout ([value, mask]); "
                f"got in_keys={ins}, out_keys={outs}"
            )
        self.in_keys, self.out_keys = ins, outs
        self.input_shape = None if input_shape is None else torch.Size(input_shape)
        self.input_dtype = input_dtype
        self.consistent_dropout = ConsistentDropout(p)

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        x = read_key(td, self.in_keys[0], self)
        if not self.consistent_dropout.training:
            return td.set(self.out_keys[0], self.consistent_dropout(x))
        mask = td.get(self.in_keys[1], None)
        y, mask = self.consistent_dropout(x, mask=mask)
        td.set(self.out_keys[0], y)
        return td.set(self.out_keys[1], mask)

    def make_tensordict_primer(self) -> None:
        """Not available: tdrl has no environment transforms to prime the mask at reset.

        Examples:
            >>> from tdrl.modules import ConsistentDropoutModule
            >>> ConsistentDropoutModule(0.1, in_keys="x").make_tensordict_primer()
            Traceback (most recent call last):
            ...
            NotImplementedError: tdrl has no env transforms (TorchRL's TensorDictPrimer); a new mask is drawn whenever the mask key is absent
        """
        raise NotImplementedError(
            "tdrl has no env transforms (TorchRL's TensorDictPrimer); a new mask is drawn "
            "whenever the mask key is absent"
        )
