"""Moving specs along with a module: what ``.to()`` / ``.cpu()`` / ``.double()`` do to specs.

``nn.Module._apply(fn)`` converts parameters and buffers; tdrl's module base
then hands the same ``fn`` to :func:`move_specs`, which converts every spec the
module holds, so no module moves its specs by hand.

Examples:
    >>> import torch
    >>> from tdrl.data import Bounded
    >>> from tdrl.modules import SafeModule
    >>> mod = SafeModule(torch.nn.Linear(2, 1), ["x"], ["y"], spec=Bounded(-1.0, 1.0, shape=(1,)))
    >>> mod.double().spec["y"].dtype
    torch.float64
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tdrl.data.tensor_specs import Composite, TensorSpec

__all__ = ["move_spec", "move_specs"]


def move_spec(spec: TensorSpec, fn: Callable[[torch.Tensor], torch.Tensor]) -> TensorSpec:
    """Applies a module conversion ``fn`` (what ``nn.Module._apply`` receives) to a spec.

    ``fn`` is probed on an empty floating tensor on the spec's device: a new
    device moves the spec; a new floating dtype casts its floating leaves
    (integer and boolean leaves keep their dtype, as parameters do).

    Examples:
        >>> import torch
        >>> from tdrl.data import Bounded, Categorical
        >>> move_spec(Bounded(-1.0, 1.0, shape=(2,)), lambda t: t.double()).dtype
        torch.float64
        >>> move_spec(Categorical(3), lambda t: t.double() if t.is_floating_point() else t).dtype
        torch.int64
    """
    device = spec.device
    if device is None:
        device = next((leaf.device for leaf in _leaves(spec) if leaf.device is not None), None)
    probe_in = torch.empty(0, device=device)
    probe = fn(probe_in)
    if not isinstance(probe, torch.Tensor):
        return spec
    out = spec
    if probe.device != probe_in.device:
        out = out.to(probe.device)
    if probe.dtype != probe_in.dtype and probe.dtype.is_floating_point:
        out = _cast_floating(out, probe.dtype)
    return out


def _leaves(spec: TensorSpec) -> list[TensorSpec]:
    if isinstance(spec, Composite):
        return [v for v in spec.values(True, True) if v is not None]
    return [spec]


def _cast_floating(spec: TensorSpec, dtype: torch.dtype) -> TensorSpec:
    if not isinstance(spec, Composite):
        return spec.to(dtype) if spec.dtype is not None and spec.dtype.is_floating_point else spec
    out = spec.clone()
    for key in spec.keys(True, True):
        leaf = spec[key]
        if leaf is not None and leaf.dtype is not None and leaf.dtype.is_floating_point:
            out[key] = leaf.to(dtype)
    return out


def move_specs(attrs: dict[str, Any], fn: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """Moves, in a module's ``__dict__``, every spec and every holder of specs; True if any.

    Handled values: a ``TensorSpec``, a bound method of one (``spec.project``)
    and any object with a ``_move_specs(move)`` method (e.g. ``SpecProjector``).
    The same spec object held twice is moved once and stays shared.

    Examples:
        >>> from tdrl.data import Bounded
        >>> spec = Bounded(-1.0, 1.0, shape=(1,))
        >>> attrs = {"spec": spec, "project": spec.project}
        >>> move_specs(attrs, lambda t: t.double()), attrs["project"].__self__ is attrs["spec"]
        (True, True)
    """
    memo: dict[int, TensorSpec] = {}

    def move(spec: TensorSpec) -> TensorSpec:
        if id(spec) not in memo:
            memo[id(spec)] = move_spec(spec, fn)
        return memo[id(spec)]

    changed = False
    for name, value in list(attrs.items()):
        if isinstance(value, TensorSpec):
            new: Any = move(value)
        elif isinstance(getattr(value, "__self__", None), TensorSpec) and callable(value):
            new = getattr(move(value.__self__), value.__name__)
            if new.__self__ is value.__self__:
                new = value
        elif callable(getattr(value, "_move_specs", None)):
            new = value._move_specs(move)
        else:
            continue
        if new is not value:
            attrs[name] = new
            changed = True
    return changed
