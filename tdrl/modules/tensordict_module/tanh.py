"""``TanhModule``: squashes network outputs into a box ``[low, high]`` with a tanh."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from tdrl.data.tensor_specs import Composite, TensorSpec
from tdrl.modules.tensordict_module.core import (
    TDRLModuleBase,
    normalize_keys,
    read_key,
    set_value,
)

__all__ = ["TanhModule"]


def _bound(value: Any, spec_value: torch.Tensor | None, default: float, arg: str, owner: str):
    """The bound as a tensor: the given one (checked against the spec's), else the spec's."""
    if value is None:
        return spec_value.clone() if spec_value is not None else torch.tensor(default)
    tensor = torch.as_tensor(value, dtype=torch.get_default_dtype())
    if spec_value is not None and bool((tensor != spec_value).any()):
        raise ValueError(
            f"The {'minimum' if arg == 'low' else 'maximum'} value ({value}) provided to {owner} "
            f"does not match the action spec one ({spec_value.tolist()}); pass {arg} or a spec "
            "with these bounds"
        )
    return tensor


class TanhModule(TDRLModuleBase):
    """Maps each input through ``tanh`` into ``[low, high]``: ``low + (high - low) * (tanh(x) + 1) / 2``.

    One output per input (``out_keys`` default to ``in_keys``, so the entries
    are replaced). The bounds come from ``low`` / ``high`` (floats, arrays or
    tensors; default ``-1`` / ``1``) or from ``spec``: a ``Bounded`` spec used
    for every key, or a ``Composite`` holding some of the out_keys. A bound
    given next to a spec must equal the spec's. Each key's bounds are buffers
    named ``<key>_low`` / ``<key>_high`` (nested keys joined with ``_``), so
    ``.to(device)`` moves them. With ``clamp=True`` the tanh is kept one float
    resolution away from +-1, so the outputs never touch the bounds.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.modules import TanhModule
        >>> mod = TanhModule(in_keys=["action"], low=-2.0, high=2.0)
        >>> td = mod(TensorDict(action=torch.tensor([-100.0, 0.0, 100.0]), batch_size=[]))
        >>> td["action"]
        tensor([-2.,  0.,  2.])
        >>> mod.action_low, mod.action_high
        (tensor(-2.), tensor(2.))
    """

    def __init__(
        self,
        in_keys: NestedKey | Sequence[NestedKey],
        out_keys: NestedKey | Sequence[NestedKey] | None = None,
        *,
        spec: TensorSpec | None = None,
        low: float | torch.Tensor | Any | None = None,
        high: float | torch.Tensor | Any | None = None,
        clamp: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        ins = normalize_keys(in_keys, "in_keys")
        outs = normalize_keys(out_keys, "out_keys") if out_keys is not None else list(ins)
        if len(ins) != len(outs) or not ins:
            raise ValueError(
                f"in_keys and out_keys should have the same length (one output per input): {name} "
                f"got in_keys={ins} and out_keys={outs}"
            )
        self.in_keys, self.out_keys = ins, outs
        if spec is None or isinstance(spec, Composite):
            present = set(spec.keys(True, True)) if spec is not None else set()
            leaves = [spec[k] if k in present else None for k in outs]
        elif isinstance(spec, TensorSpec):
            leaves = [spec] * len(outs)
            spec = Composite({k: spec for k in outs})
        else:
            raise TypeError(f"{name}: spec must be a TensorSpec or a Composite, got {type(spec).__name__}")
        self.spec = spec
        self.clamp = clamp
        self.non_trivial: dict[NestedKey, bool] = {}
        self._buffers_of: list[tuple[str, str]] = []
        for key, leaf in zip(outs, leaves):
            space = getattr(leaf, "space", None) if leaf is not None else None
            spec_low = getattr(space, "low", None)
            spec_high = getattr(space, "high", None)
            lo = _bound(low, spec_low, -1.0, "low", name)
            hi = _bound(high, spec_high, 1.0, "high", name)
            if bool((hi < lo).any()):
                raise ValueError(
                    f"Got high < low in {name} for the key {key!r}: low={lo.tolist()}, "
                    f"high={hi.tolist()}"
                )
            flat = key if isinstance(key, str) else "_".join(key)
            self.register_buffer(f"{flat}_low", lo)
            self.register_buffer(f"{flat}_high", hi)
            self._buffers_of.append((f"{flat}_low", f"{flat}_high"))
            self.non_trivial[key] = bool((hi != 1).any() or (lo != -1).any())

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        values = [read_key(td, k, self) for k in self.in_keys]  # all read before any write
        for key, x, (lo_name, hi_name) in zip(self.out_keys, values, self._buffers_of):
            y = x.tanh()
            if self.clamp:
                eps = torch.finfo(y.dtype).resolution
                y = y.clamp(-1 + eps, 1 - eps)
            if self.non_trivial[key]:
                lo, hi = getattr(self, lo_name), getattr(self, hi_name)
                y = lo + (hi - lo) * (y + 1) / 2
            set_value(td, key, y)
        return td

    def extra_repr(self) -> str:
        return f"in_keys={self.in_keys}, out_keys={self.out_keys}, clamp={self.clamp}"
