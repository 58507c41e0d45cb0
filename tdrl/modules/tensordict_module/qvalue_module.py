"""``QValueModule`` and ``DistributionalQValueModule``: the greedy step of a Q-value policy."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from tdrl.data.tensor_specs import Composite, TensorSpec
from tdrl.modules.distributions.bounds import _is_compiling
from tdrl.modules.tensordict_module.action_space import (
    CHECK_MASK,
    PROBED_MASK,
    SELECT,
    resolve_action_space,
)
from tdrl.modules.tensordict_module.core import (
    TDRLModuleBase,
    get_or_none,
    missing_key_error,
    normalize_keys,
    set_value,
)

__all__ = ["QValueModule", "DistributionalQValueModule", "mask_missing_error", "STRICT_SHAPES"]

#: The valid ``strict_shape`` values (TorchRL's).
STRICT_SHAPES = (None, True, False, "auto")


def mask_missing_error(owner: Any, key: NestedKey, td: TensorDictBase) -> KeyError:
    """The ``KeyError`` for a missing action mask: TorchRL's phrase, then tdrl's detail.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> print(mask_missing_error("M", "mask", TensorDict(a=torch.zeros(1))).args[0])
        Action mask key mask not found in TensorDict: M expected the key 'mask' in its input TensorDict, but it is missing; keys present: ['a']
    """
    return KeyError(
        f"Action mask key {key} not found in TensorDict: {missing_key_error(owner, key, td).args[0]}"
    )


class QValueModule(TDRLModuleBase):
    """Turns action values into the greedy action, in any discrete action space.

    Reads ``action_value_key`` (and ``action_mask_key`` if given), writes
    ``out_keys`` = ``[action, action_value, chosen_action_value]`` (default
    ``["action", action_value_key, "chosen_action_value"]``). The action space
    comes from ``spec`` (a leaf spec, or a ``Composite`` holding the action key)
    or, without spec, from ``action_space`` (one of :data:`ACTION_SPACES`);
    ``var_nums`` gives the sub-space sizes of ``mult-one-hot`` /
    ``multi-categorical`` without spec. ``safe=True`` projects the action into
    the spec. Ties pick the lowest index, so a one-hot action has exactly one 1.
    Called with tensors (``module(action_value=...)``) it returns the tuple of outputs.

    Action values holding NaN raise ``ValueError`` naming the key (``max`` would
    otherwise pick the NaN). With a mask (a ``bool`` tensor; another dtype
    raises), the written action values hold the lowest finite value at the
    masked actions, as in TorchRL.

    Args:
        action_space: the action space name, when there is no spec.
        action_value_key: where the action values are read (``"action_value"``).
        action_mask_key: where a boolean mask of allowed actions is read (optional).
        out_keys: the action, action-value and chosen-value keys.
        var_nums: sub-space sizes (a list, or an int when a spec gives the count).
        spec: the action spec.
        safe: project the action into the spec.
        strict_shape: TorchRL's action-shape policy (``None``, ``True``, ``False``
            or ``"auto"``). tdrl always writes the action in the spec's shape;
            action values whose size does not match the spec raise
            ``ValueError`` (``RuntimeError`` with ``strict_shape=True``).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.data import OneHot
        >>> from tdrl.modules import QValueModule
        >>> module = QValueModule(spec=OneHot(3), action_mask_key="mask")
        >>> td = TensorDict(action_value=torch.tensor([[1.0, 5.0, 2.0]]),
        ...                 mask=torch.tensor([[True, False, True]]), batch_size=[1])
        >>> td = module(td)
        >>> td["action"], td["chosen_action_value"]
        (tensor([[0, 0, 1]]), tensor([[2.]]))
        >>> QValueModule(action_space="categorical")(action_value=torch.tensor([0.0, 3.0]))[0]
        tensor(1)
        >>> QValueModule(action_space="categorical")(action_value=torch.tensor([0.0, float("nan")]))
        Traceback (most recent call last):
        ...
        ValueError: QValueModule: the action values 'action_value' contain NaN (1 of 1 rows); the greedy action is undefined
    """

    _default_out = ("action", None, "chosen_action_value")
    #: called with tensors, the TensorDict built for them has batch size ``[]`` (TorchRL's
    #: ``dispatch(auto_batch_size=False)``): distributional values ``[atoms, n]`` are one row
    _auto_batch_size = False

    def __init__(
        self,
        action_space: str | TensorSpec | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        var_nums: int | Sequence[int] | None = None,
        spec: TensorSpec | None = None,
        safe: bool = False,
        strict_shape: bool | str | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if strict_shape not in STRICT_SHAPES:
            raise ValueError(
                f"{name}: strict_shape must be one of {list(STRICT_SHAPES)}, got {strict_shape!r}"
            )
        self.strict_shape = strict_shape
        value_key = normalize_keys(
            action_value_key if action_value_key is not None else "action_value",
            "action_value_key",
        )[0]
        if out_keys is None:
            out = [k if k is not None else value_key for k in self._default_out]
        else:
            out = normalize_keys(out_keys, "out_keys")
            if len(out) not in (2, 3):
                raise ValueError(
                    f"{name} takes 2 or 3 out_keys (action, action value and optionally the "
                    f"chosen action value), got {out}"
                )
        self._action_key = out[0]
        self._value_key = value_key
        self._value_out_key = out[1]
        self._chosen_key = out[2] if len(out) > 2 else None
        self._mask_key = (
            normalize_keys(action_mask_key, "action_mask_key")[0]
            if action_mask_key is not None
            else None
        )
        self.in_keys = [value_key] + ([self._mask_key] if self._mask_key is not None else [])
        self.out_keys = out

        if isinstance(spec, Composite):
            keys = list(spec.keys(include_nested=True, leaves_only=True))
            if self._action_key not in keys:
                raise KeyError(
                    f"{name}: the Composite spec has no entry for the action key "
                    f"{self._action_key!r}; its keys: {keys}"
                )
            leaf: TensorSpec | None = spec[self._action_key]
        else:
            leaf = spec
        self._space = resolve_action_space(action_space, leaf, var_nums, name)
        if leaf is None and isinstance(action_space, TensorSpec):
            leaf = action_space
        self.action_space = self._space.name
        self.var_nums = var_nums
        self.spec = Composite({self._action_key: leaf}) if leaf is not None else None
        if safe and leaf is None:
            raise ValueError(f"{name}(safe=True) needs a spec to project the action into")
        self.safe = safe
        self._leaf = leaf
        self._project = leaf.project if (safe and leaf is not None) else None
        self._select = SELECT[self._space.name]
        self._check_mask = CHECK_MASK[self._space.name]
        self._mask_probed = self._space.name in PROBED_MASK
        self._n_values = self._space.n_values
        nvec = self._space.nvec or (0,)
        starts = [sum(nvec[:i]) for i in range(len(nvec))]
        self.register_buffer("_offsets_buf", torch.tensor(starts), persistent=False)
        self.register_buffer("_arange_buf", torch.arange(self._n_values or 0), persistent=False)
        self._refresh()

    @property
    def action_value_key(self) -> NestedKey:
        """The key the action values are read from."""
        return self._value_key

    @property
    def action_mask_key(self) -> NestedKey | None:
        """The key of the mask of allowed actions (``None``: no mask)."""
        return self._mask_key

    def _refresh(self) -> None:
        # plain attributes for the per-call path (buffer lookups go through nn.Module.__getattr__)
        self._offsets = self._offsets_buf
        self._arange = self._arange_buf

    def _apply(self, *args: Any, **kwargs: Any) -> QValueModule:
        out = super()._apply(*args, **kwargs)
        self._refresh()
        device = self._offsets.device
        if self._leaf is not None and self._leaf.device not in (None, device):
            self._leaf = self._leaf.to(device)
            self.spec = Composite({self._action_key: self._leaf})
            self._project = self._leaf.project if self.safe else None
        return out

    # the per-call path ------------------------------------------------------------------
    def _read(self, td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor | None]:
        values = get_or_none(td, self._value_key)
        if values is None:
            raise missing_key_error(self, self._value_key, td)
        if self._mask_key is None:
            return values, None
        mask = get_or_none(td, self._mask_key)
        if mask is None:
            raise mask_missing_error(self, self._mask_key, td)
        return values, mask

    def _prepare_mask(
        self,
        mask: torch.Tensor,
        scores: torch.Tensor,
        owner: str | None = None,
        probed: bool = False,
    ) -> torch.Tensor:
        # probed: the caller checks the selection probe (see _verify), which reveals a fully
        # masked row where the space allows it; the mask is then not read here
        owner = owner or type(self).__name__
        if mask.dtype is not torch.bool:
            raise ValueError(
                f"{owner}: the action mask {self._mask_key!r} has dtype {mask.dtype}, expected "
                "torch.bool (True = allowed); convert it explicitly, e.g. mask > 0"
            )
        if mask.shape[-1:] != scores.shape[-1:]:
            raise ValueError(
                f"{owner}: the action mask {self._mask_key!r} has shape "
                f"{tuple(mask.shape)}, expected the action values' shape {tuple(scores.shape)}"
            )
        if not (probed and self._mask_probed):
            self._check_mask(self, mask, owner)
        return mask

    def _bad_values(self, values: torch.Tensor) -> Exception:
        expected = (
            f"[..., {self._n_values}] (a last dimension of {self._n_values}, from the spec)"
            if self._n_values is not None
            else "at least one dimension"
        )
        cls = RuntimeError if self.strict_shape is True else ValueError
        return cls(
            f"{type(self).__name__}: the action values {self._value_key!r} have shape "
            f"{tuple(values.shape)}, which does not match expected shape {expected}"
        )

    def _verify(
        self, values: torch.Tensor, probe: torch.Tensor, mask: torch.Tensor | None
    ) -> None:
        """Raises on NaN action values or a fully masked row, with one read of ``probe``.

        The probe's sum (from the selection function) is finite when all is
        well; otherwise the exact checks run. Skipped while torch.compile /
        torch.export trace (a graph cannot branch on values).
        """
        if _is_compiling():
            return
        total = probe.item() if probe.numel() == 1 else probe.sum().item()
        if math.isfinite(total):
            return
        name = type(self).__name__
        if mask is not None and self._mask_probed:
            self._check_mask(self, mask, name)
        nan = values.isnan()
        if mask is not None and values.shape == mask.shape:
            nan = nan & mask  # a NaN under a masked action is never picked
        if bool(nan.any()):
            rows = nan.reshape(-1, values.shape[-1]).any(-1)
            raise ValueError(
                f"{name}: the action values {self._value_key!r} contain NaN "
                f"({int(rows.sum())} of {rows.numel()} rows); the greedy action is undefined"
            )

    def _write(
        self,
        td: TensorDictBase,
        values: torch.Tensor,
        action: torch.Tensor,
        chosen: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> TensorDictBase:
        if self._project is not None:
            action = self._project(action).to(self._space.dtype)
        set_value(td, self._action_key, action)
        if mask is not None:  # TorchRL writes the masked action values
            values = torch.where(mask, values, torch.finfo(values.dtype).min)
            set_value(td, self._value_out_key, values)
        elif self._value_out_key != self._value_key:
            set_value(td, self._value_out_key, values)
        if self._chosen_key is not None:
            set_value(td, self._chosen_key, chosen)
        return td

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        values = get_or_none(td, self._value_key)
        if values is None:
            raise missing_key_error(self, self._value_key, td)
        return self._act(td, values)

    def _greedy(
        self,
        scores: torch.Tensor,
        mask: torch.Tensor | None,
        raw: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The checked greedy pick on ``scores`` ``[..., n]``: ``(action, chosen value)``.

        Checks the shape (an error names ``raw``'s shape when given: the values
        the scores come from), the mask, NaN and fully masked rows, then selects.
        Shared by the module, its distributional variant and the hooks.
        """
        shape = scores.shape
        if not shape or (self._n_values is not None and shape[-1] != self._n_values):
            raise self._bad_values(scores if raw is None else raw)
        if mask is not None:
            mask = self._prepare_mask(mask, scores, probed=True)
        action, chosen, probe = self._select(self, scores, mask)
        self._verify(scores, probe, mask)
        return action, chosen

    def _act(self, td: TensorDictBase, values: torch.Tensor) -> TensorDictBase:
        """Picks and writes the action for ``values`` (already read from ``td``)."""
        mask = None
        if self._mask_key is not None:
            mask = get_or_none(td, self._mask_key)
            if mask is None:
                raise mask_missing_error(self, self._mask_key, td)
        action, chosen = self._greedy(values, mask)
        return self._write(td, values, action, chosen, mask)

    def extra_repr(self) -> str:
        return (
            f"action_space={self.action_space!r}, in_keys={self.in_keys}, "
            f"out_keys={self.out_keys}, safe={self.safe}"
        )


class DistributionalQValueModule(QValueModule):
    """Greedy action from distributional action values (log-probabilities over atoms).

    The action values ``[..., n_atoms, n_values]`` are log-probabilities over
    ``support`` (``n_atoms`` values) along dimension -2; the action maximises
    the expected value ``sum(exp(log_p) * support)``, in any action space of
    :class:`QValueModule`, with the same masks. ``out_keys`` default to
    ``["action", action_value_key]``; a third key receives the chosen expected value.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.data import OneHot
        >>> from tdrl.modules import DistributionalQValueModule
        >>> support = torch.tensor([-1.0, 0.0, 1.0])
        >>> module = DistributionalQValueModule(spec=OneHot(2), support=support)
        >>> probs = torch.tensor([[0.8, 0.1], [0.1, 0.1], [0.1, 0.8]])  # atoms x actions
        >>> td = module(TensorDict(action_value=probs.log(), batch_size=[]))
        >>> td["action"]
        tensor([0, 1])
    """

    _default_out = ("action", None)

    def __init__(
        self,
        action_space: str | TensorSpec | None = None,
        support: torch.Tensor | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        var_nums: int | Sequence[int] | None = None,
        spec: TensorSpec | None = None,
        safe: bool = False,
        strict_shape: bool | str | None = None,
    ) -> None:
        super().__init__(
            action_space=action_space,
            action_value_key=action_value_key,
            action_mask_key=action_mask_key,
            out_keys=out_keys,
            var_nums=var_nums,
            spec=spec,
            safe=safe,
            strict_shape=strict_shape,
        )
        if support is None:
            raise TypeError(f"{type(self).__name__} needs a support tensor (the atom values)")
        support = torch.as_tensor(support)
        if support.ndim != 1 or support.numel() < 1:
            raise ValueError(
                f"support must be a 1-d tensor of atom values, got shape {tuple(support.shape)}"
            )
        self.register_buffer("support", support.clone())

    def expected_values(self, values: torch.Tensor) -> torch.Tensor:
        """``[..., n_atoms, n] -> [..., n]``: the expected value of each action."""
        support = self.support
        if values.dim() < 2 or values.shape[-2] != support.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: the action values {self._value_key!r} have shape "
                f"{tuple(values.shape)}, expected [..., {support.shape[0]} atoms, n_actions]"
            )
        return (values.exp() * support.to(values.dtype).unsqueeze(-1)).sum(-2)

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        values, mask = self._read(td)
        action, chosen = self._greedy(self.expected_values(values), mask, raw=values)
        # the log-probabilities are written as read (a mask selects actions, not atoms)
        return self._write(td, values, action, chosen, None)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_atoms={self.support.numel()}"
