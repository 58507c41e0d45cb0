"""What :class:`LSTMModule` and :class:`GRUModule` share: keys, the two modes, resets, state checks.

The rules, in one place (the module docstrings point here):

**Keys.** ``in_keys = [value, *state_keys, "is_init"]`` and
``out_keys = [output, *next_state_keys]``; the state read at step ``t`` is
the one written under ``("next", key)`` at step ``t - 1``, which
:func:`tdrl.envs.utils.step_mdp` moves to ``key``.

**Sequential mode** (one step per call, default): ``value`` is
``[*batch, F]``, each state ``[*batch, num_layers, H]``, ``is_init``
``[*batch]`` or ``[*batch, 1]``. Where ``is_init`` is True the state is
replaced by zeros before the step (a new trajectory never inherits the last
one's state).

**Recurrent mode** (``set_recurrent_mode(True)``): the TensorDict is
``[*B, T]`` -- time is the LAST batch dimension -- so ``value`` is
``[*B, T, F]``, each state ``[*B, T, num_layers, H]`` and ``is_init``
``[*B, T(, 1)]``. ``is_init[..., t]`` marks the steps where a trajectory
starts; a row may hold several trajectories and they never share state. Each
trajectory starts from zeros if it starts at an ``is_init`` step, else (the
row's first step continues a trajectory begun before the batch) from the
state stored at the row's first step -- the only stored state ever read. The
outputs are those of running each trajectory alone, step by step.
``("next", state)`` holds the state after each trajectory's last step in the
row (at the step before every ``is_init`` mark and at the row's last step),
zeros elsewhere (a fused ``nn.LSTM`` returns no per-step cell states).

**Missing state** (pytorch/rl #2327). Recurrent mode: rows start from zeros.
Sequential mode: entries with ``is_init`` True start from zeros, as they
should; if some entry continues a trajectory, the zero state is accepted on
one call (the first step of a rollout, before any state exists), but if the
module's previous sequential call ran without its state as well -- the state
it wrote was never carried back -- it raises ``KeyError`` naming the missing
keys, the keys present and the fix: otherwise every step would restart from
zeros and the policy would have no memory.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey, unravel_key_list
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tdrl._compat import fused_rnn, is_compiling
from tdrl.data import Composite, Unbounded
from tdrl.modules.tensordict_module.core import (
    FastCall,
    TDRLModuleBase,
    get_or_none,
    key_str,
    missing_key_error,
    set_value,
)
from tdrl.modules.tensordict_module.rnn_cells import _PythonRNN
from tdrl.modules.tensordict_module.rnn_mode import recurrent_mode
from tdrl.modules.tensordict_module.rnn_segments import end_mask, from_segments, segments

__all__ = ["RecurrentModuleBase"]

_BACKENDS = ("auto", "pad", "scan", "triton")


def _any(mask: Tensor) -> bool:
    """``mask.any()`` as a Python bool; True when it cannot be read (``vmap``, tracing)."""
    if is_compiling():
        return True
    try:
        return bool(mask.any())
    except RuntimeError:  # a batched tensor under vmap: data-dependent control flow
        return True


class RecurrentModuleBase(TDRLModuleBase):
    """Base of the recurrent TensorDict modules (see the module docstring for the rules).

    Subclasses set ``_rnn_attr`` (the attribute holding the ``nn.LSTM`` /
    ``nn.GRU`` or tdrl's python twin), ``DEFAULT_IN_KEYS`` /
    ``DEFAULT_OUT_KEYS``, and call :meth:`_setup` from their constructor.

    Examples:
        >>> from tdrl.modules import GRUModule, LSTMModule
        >>> isinstance(GRUModule(2, 3, in_key="x", out_key="y"), RecurrentModuleBase)
        True
        >>> LSTMModule(2, 3, in_key="x", out_key="y")._optional_in_keys
        ('recurrent_state_h', 'recurrent_state_c')
    """

    DEFAULT_IN_KEYS: list[NestedKey] = []
    DEFAULT_OUT_KEYS: list[NestedKey] = []
    _rnn_attr = "rnn"

    # ------------------------------------------------------------------------ construction
    def _setup(
        self,
        rnn: nn.RNNBase,
        *,
        in_key: NestedKey | None,
        in_keys: Sequence[NestedKey] | None,
        out_key: NestedKey | None,
        out_keys: Sequence[NestedKey] | None,
        recurrent_backend: str,
        recurrent_recompute: str,
        default_recurrent_mode: bool | None,
    ) -> None:
        name = type(self).__name__
        n = len(self.DEFAULT_IN_KEYS)
        if (in_key is None) == (in_keys is None):
            raise ValueError(f"{name}: pass exactly one of in_key and in_keys, got "
                             f"in_key={in_key!r}, in_keys={in_keys!r}")
        if (out_key is None) == (out_keys is None):
            raise ValueError(f"{name}: pass exactly one of out_key and out_keys, got "
                             f"out_key={out_key!r}, out_keys={out_keys!r}")
        in_keys = [in_key, *self.DEFAULT_IN_KEYS] if in_key is not None else in_keys
        out_keys = [out_key, *self.DEFAULT_OUT_KEYS] if out_key is not None else out_keys
        in_keys, out_keys = unravel_key_list(in_keys), unravel_key_list(out_keys)  # TypeError on a str
        if in_keys and in_keys[-1] == "is_init" and len(in_keys) == n + 2:
            in_keys = in_keys[:-1]
        if len(in_keys) != n + 1:
            raise ValueError(f"{name} expects in_keys [value, {n} state key(s)] (optionally "
                             f"followed by 'is_init'), got in_keys {in_keys}")
        if len(out_keys) != n + 1:
            raise ValueError(f"{name} expects out_keys [output, {n} next-state key(s)], got "
                             f"out_keys {out_keys}")
        if recurrent_backend not in _BACKENDS:
            raise ValueError(f"{name}: unknown recurrent_backend {recurrent_backend!r}; "
                             f"choose among {list(_BACKENDS)}")
        if recurrent_backend in ("scan", "triton"):
            raise NotImplementedError(
                f"{name}: recurrent_backend={recurrent_backend!r} is a TorchRL kernel tdrl does "
                "not have; 'pad' / 'auto' (the default) handle every batch exactly")
        if recurrent_recompute != "none":
            raise ValueError(f"{name}: recurrent_recompute must be 'none' with the 'pad' "
                             f"backend, got {recurrent_recompute!r}")
        if rnn.bidirectional:
            raise ValueError(f"{name}: a bidirectional RNN reads future steps, which a policy "
                             "acting step by step cannot see; use bidirectional=False")
        if not rnn.batch_first:
            raise ValueError(f"{name}: the wrapped RNN must have batch_first=True")
        setattr(self, self._rnn_attr, rnn)
        self.in_keys = [*in_keys, "is_init"]
        self.out_keys = out_keys
        self.recurrent_backend = recurrent_backend
        self.recurrent_recompute = recurrent_recompute
        self._recurrent_mode = default_recurrent_mode
        self._stateless_pending = False  # previous sequential call ran without its state
        self._plan()

    def _plan(self) -> None:
        """Key plans and sizes, computed once (and again after the RNN is swapped)."""
        rnn = getattr(self, self._rnn_attr)
        self._value_key = self.in_keys[0]
        self._state_keys = tuple(self.in_keys[1:-1])
        self._optional_in_keys = self._state_keys  # containers do not require them up front
        self._sizes = self._state_sizes(rnn)
        self._layers = rnn.num_layers
        self._out_size = self._sizes[0]
        self._call = fused_rnn(rnn) or FastCall(rnn)
        # each out-key as (parent, leaf): ("next", "h") is written into td["next"] directly
        self._writes = [
            (k[0], k[1]) if isinstance(k, tuple) and len(k) == 2 else (None, k)
            for k in self.out_keys
        ]

    @staticmethod
    def _state_sizes(rnn: nn.RNNBase) -> tuple[int, ...]:
        raise NotImplementedError

    def _swap_rnn(self, cls: type) -> TDRLModuleBase:
        """Replaces the RNN by an instance of ``cls`` holding the very same parameters."""
        old = getattr(self, self._rnn_attr)
        kwargs = dict(input_size=old.input_size, hidden_size=old.hidden_size,
                      num_layers=old.num_layers, bias=old.bias, batch_first=True,
                      dropout=old.dropout, device="meta")
        if getattr(old, "proj_size", 0):
            kwargs["proj_size"] = old.proj_size
        new = cls(**kwargs)
        new.load_state_dict(old.state_dict(keep_vars=True), assign=True)
        new.train(old.training)
        setattr(self, self._rnn_attr, new)
        self._plan()
        return self

    # ------------------------------------------------------------------------------ modes
    @property
    def recurrent_mode(self) -> bool:
        """The mode of the next call: the innermost ``set_recurrent_mode``, else the default.

        Examples:
            >>> from tdrl.modules import GRUModule, set_recurrent_mode
            >>> gru = GRUModule(2, 3, in_key="x", out_key="y", default_recurrent_mode=True)
            >>> with set_recurrent_mode("sequential"):
            ...     print(gru.recurrent_mode)
            False
            >>> gru.recurrent_mode
            True
        """
        mode = recurrent_mode()
        return bool(self._recurrent_mode) if mode is None else mode

    @recurrent_mode.setter
    def recurrent_mode(self, value: bool) -> None:
        raise RuntimeError(f"{type(self).__name__}.recurrent_mode cannot be assigned: use "
                           "`with set_recurrent_mode(...)` or default_recurrent_mode=")

    def set_recurrent_mode(self, mode: bool = True) -> None:
        """Removed in TorchRL 0.8: raises, pointing to the context manager.

        Examples:
            >>> from tdrl.modules import GRUModule
            >>> GRUModule(2, 3, in_key="x", out_key="y").set_recurrent_mode(True)
            Traceback (most recent call last):
            ...
            RuntimeError: GRUModule.set_recurrent_mode() no longer exists: use `with tdrl.modules.set_recurrent_mode(mode):` or default_recurrent_mode= in the constructor
        """
        raise RuntimeError(f"{type(self).__name__}.set_recurrent_mode() no longer exists: use "
                           "`with tdrl.modules.set_recurrent_mode(mode):` or "
                           "default_recurrent_mode= in the constructor")

    @property
    def temporal_mode(self) -> bool:
        """TorchRL's old name: raises, pointing to ``recurrent_mode``.

        Examples:
            >>> from tdrl.modules import GRUModule
            >>> GRUModule(2, 3, in_key="x", out_key="y").temporal_mode
            Traceback (most recent call last):
            ...
            RuntimeError: temporal_mode is deprecated, use recurrent_mode instead
        """
        raise RuntimeError("temporal_mode is deprecated, use recurrent_mode instead")

    # ------------------------------------------------------------------------- state helpers
    def _check_carry_names(self, what: str) -> None:
        for k_in, k_out in zip(self._state_keys, self.out_keys[1:]):
            k_in_t = (k_in,) if isinstance(k_in, str) else tuple(k_in)
            k_out_t = (k_out,) if isinstance(k_out, str) else tuple(k_out)
            if k_out_t != ("next", *k_in_t):
                raise RuntimeError(
                    f"{type(self).__name__}.{what}: the state written under {key_str(k_out)} "
                    f"is not read back from {key_str(k_in)}; name each next-state out_key "
                    f"('next', <state in_key>) (in_keys={self.in_keys}, out_keys={self.out_keys})")

    def recurrent_state_spec(self, batch_shape: Sequence[int] = ()) -> Composite:
        """The recurrent state as a :class:`~tdrl.data.Composite` of ``[*batch_shape, L, H]`` entries.

        What TorchRL's ``make_tensordict_primer`` registers with an env, without
        an env: one ``Unbounded`` entry per state in-key. Raises
        ``RuntimeError`` unless every next-state out-key is ``("next", in_key)``.

        Examples:
            >>> from tdrl.modules import LSTMModule
            >>> spec = LSTMModule(3, 8, num_layers=2, in_key="obs", out_key="f").recurrent_state_spec([5])
            >>> spec.shape, spec["recurrent_state_h"].shape, spec["recurrent_state_c"].shape
            (torch.Size([5]), torch.Size([5, 2, 8]), torch.Size([5, 2, 8]))
        """
        self._check_carry_names("recurrent_state_spec")
        p = next(getattr(self, self._rnn_attr).parameters())
        shape = torch.Size(batch_shape)
        return Composite(
            {k: Unbounded(shape=(*shape, self._layers, size), device=p.device, dtype=p.dtype)
             for k, size in zip(self._state_keys, self._sizes)},
            shape=shape,
        )

    def initial_state(
        self,
        batch_shape: Sequence[int] = (),
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> TensorDict:
        """A zero recurrent state for ``batch_shape`` (a TensorDict of the state in-keys).

        Update a rollout's first TensorDict with it; ``step_mdp`` then carries the
        state. Device and dtype default to the module's parameters'.

        Examples:
            >>> from tdrl.modules import GRUModule
            >>> zero = GRUModule(3, 8, in_key="obs", out_key="f").initial_state([4, 2])
            >>> zero.batch_size, zero["recurrent_state"].shape, zero["recurrent_state"].abs().sum()
            (torch.Size([4, 2]), torch.Size([4, 2, 1, 8]), tensor(0.))
        """
        self._check_carry_names("initial_state")
        p = next(getattr(self, self._rnn_attr).parameters())
        shape = torch.Size(batch_shape)
        kw = {"device": device or p.device, "dtype": dtype or p.dtype}
        return TensorDict(
            {k: torch.zeros(*shape, self._layers, size, **kw)
             for k, size in zip(self._state_keys, self._sizes)},
            batch_size=shape, device=kw["device"])

    def make_tensordict_primer(self) -> Any:
        """TorchRL builds an env transform here; tdrl has no envs: see the alternatives below.

        Raises ``NotImplementedError`` naming :meth:`recurrent_state_spec` (the
        spec an env would register) and :meth:`initial_state` (the zero state
        to start a rollout from).

        Examples:
            >>> from tdrl.modules import GRUModule
            >>> GRUModule(3, 8, in_key="obs", out_key="f").make_tensordict_primer()
            Traceback (most recent call last):
            ...
            NotImplementedError: GRUModule.make_tensordict_primer() returns a TorchRL env transform, and tdrl has no env classes: use recurrent_state_spec(batch_shape) for the state's spec and initial_state(batch_shape) for the zero state a rollout starts from
        """
        raise NotImplementedError(
            f"{type(self).__name__}.make_tensordict_primer() returns a TorchRL env transform, "
            "and tdrl has no env classes: use recurrent_state_spec(batch_shape) for the state's "
            "spec and initial_state(batch_shape) for the zero state a rollout starts from")

    # ------------------------------------------------------------------------------- run
    def _missing_init(self, td: TensorDictBase) -> KeyError:
        err = missing_key_error(self, "is_init", td)
        return KeyError(
            err.args[0] + ". is_init (bool, [*batch] or [*batch, 1]) marks the steps where a "
            "trajectory starts (the recurrent state restarts from zero there): True on the "
            "first step after a reset, False elsewhere")

    def _missing_state(self, td: TensorDictBase, states: list, partial: bool) -> KeyError:
        name = type(self).__name__
        missing = [k for k, s in zip(self._state_keys, states) if s is None]
        present = sorted(str(k) for k in td.keys(include_nested=True, leaves_only=True))
        why = ("only part of the recurrent state was given" if partial else
               "its previous sequential call ran without the state too, so the state it wrote "
               f"under {list(self.out_keys[1:])} was not carried back and "
               "every step would restart from zeros (the policy would have no memory)")
        return KeyError(
            f"{name}: recurrent state {missing} missing from the input "
            f"(keys present: {present}): {why}. Carry it from step to step "
            "(tdrl.envs.utils.step_mdp moves ('next', key) to key), start a rollout from "
            f"{name}.initial_state(batch_shape), or set is_init=True on entries that really "
            "start a trajectory")

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        x = get_or_none(td, self._value_key)
        if x is None:
            raise missing_key_error(self, self._value_key, td)
        is_init = get_or_none(td, "is_init")
        if is_init is None:
            raise self._missing_init(td)
        if is_init.dtype is not torch.bool:
            raise TypeError(f"{type(self).__name__}: is_init must be torch.bool, got "
                            f"{is_init.dtype}")
        states = [get_or_none(td, k) for k in self._state_keys]
        if self.recurrent_mode:
            outs = self._recurrent(x, is_init, states, td)
        else:
            outs = self._sequential(x, is_init, states, td)
        for (parent, leaf), value in zip(self._writes, outs):
            if parent is None:
                set_value(td, leaf, value)
                continue
            sub = get_or_none(td, parent)
            if sub is None:  # ("next", ...) written into a fresh sub-TensorDict
                sub = td.empty()
                set_value(td, parent, sub)
            elif not isinstance(sub, TensorDictBase):
                set_value(td, (parent, leaf), value)  # raises, naming the clash
                continue
            set_value(sub, leaf, value)
        return td

    def _flat_init(self, is_init: Tensor, batch: torch.Size, n: int) -> Tensor:
        if is_init.numel() != n or is_init.shape[: len(batch)] != batch:
            raise ValueError(f"{type(self).__name__}: is_init has shape {list(is_init.shape)}, "
                             f"expected {list(batch)} or {[*batch, 1]}")
        return is_init.reshape(n)

    def _flat_states(self, states: list, batch: torch.Size, n: int) -> list[Tensor]:
        out = []
        for key, s, size in zip(self._state_keys, states, self._sizes):
            if s.shape != (*batch, self._layers, size):
                raise ValueError(
                    f"{type(self).__name__}: state {key_str(key)} has shape {list(s.shape)}, "
                    f"expected {[*batch, self._layers, size]} ([*batch, num_layers, hidden])")
            out.append(s.reshape(n, self._layers, size))
        return out

    def _sequential(self, x: Tensor, is_init: Tensor, states: list, td: TensorDictBase) -> list:
        batch = x.shape[:-1]
        n = math.prod(batch)
        init = self._flat_init(is_init, batch, n)
        if any(s is None for s in states):
            if any(s is not None for s in states):
                raise self._missing_state(td, states, partial=True)
            if self._stateless_pending and not bool(init.all()):
                raise self._missing_state(td, states, partial=False)
            self._stateless_pending = True
            hx = None
        else:
            if self._stateless_pending:
                self._stateless_pending = False
            flat = self._flat_states(states, batch, n)
            if _any(init):  # restart the entries that begin a trajectory from zeros
                mask = init.view(n, 1, 1)
                flat = [s.masked_fill(mask, 0.0) for s in flat]
            hx = [s.transpose(0, 1) for s in flat]
        y, final = self._call_rnn(x.reshape(n, 1, x.shape[-1]), hx)
        return [y.reshape(*batch, self._out_size),
                *(f.transpose(0, 1).reshape(*batch, self._layers, size)
                  for f, size in zip(final, self._sizes))]

    def _call_rnn(self, x: Tensor, hx: list[Tensor] | None) -> tuple[Tensor, tuple]:
        raise NotImplementedError

    def _recurrent(self, x: Tensor, is_init: Tensor, states: list, td: TensorDictBase) -> list:
        name = type(self).__name__
        if x.dim() < 2:
            raise ValueError(f"{name} in recurrent mode needs a time dimension: the value "
                             f"{key_str(self._value_key)} has shape {list(x.shape)}")
        if x.dim() == 2:  # [T, F]: one sequence
            x = x.unsqueeze(0)
            is_init = is_init.unsqueeze(0)
            states = [None if s is None else s.unsqueeze(0) for s in states]
            squeeze = True
        else:
            squeeze = False
        lead = x.shape[:-1]
        b, t = math.prod(lead[:-1]), lead[-1]
        init = self._flat_init(is_init, lead, b * t).view(b, t)
        xb = x.reshape(b, t, x.shape[-1])
        if any(s is None for s in states):
            if any(s is not None for s in states):
                raise self._missing_state(td, states, partial=True)
            first = [xb.new_zeros(b, self._layers, size) for size in self._sizes]
        else:
            first = [s.view(b, t, self._layers, -1)[:, 0] for s in self._flat_states(
                states, lead, b * t)]
        rnn = getattr(self, self._rnn_attr)
        if isinstance(rnn, _PythonRNN):  # a reset-aware loop: no cutting, vmap-able
            y, _, steps = rnn.run_sequences(
                xb, tuple(f.transpose(0, 1) for f in first), init, step_states=True)
            ends = end_mask(init)[..., None, None]
            nxt = [torch.where(ends, s, torch.zeros((), dtype=s.dtype, device=s.device))
                   for s in steps]
        else:
            y, nxt = self._recurrent_fused(xb, init, first)
        outs = [y.reshape(*lead, -1), *(s.reshape(*lead, self._layers, -1) for s in nxt)]
        return [o.squeeze(0) for o in outs] if squeeze else outs

    def _recurrent_fused(self, xb: Tensor, init: Tensor, first: list[Tensor]) -> tuple:
        """One fused RNN call: the whole rows, or their segments packed when a row is cut."""
        b, t = init.shape
        if not bool(init[:, 1:].any()):  # one trajectory (or its continuation) per row
            hx = [f.masked_fill(init[:, :1, None], 0.0).transpose(0, 1) for f in first]
            y, final = self._call_rnn(xb, hx)
            nxt = []
            for f in final:  # [num_layers, B, H] -> the last step of [B, T, num_layers, H]
                f = f.transpose(0, 1)
                nxt.append(torch.cat([f.new_zeros(b, t - 1, *f.shape[1:]), f[:, None]], 1))
            return y, nxt
        seg = segments(init)
        n = seg.lengths.numel()
        flat_init = init.reshape(-1)
        # a row's first segment continues from the stored state unless it is a start itself;
        # every other segment starts at an is_init mark, hence from zeros
        starts_in_row0 = seg.starts % t == 0
        fresh = flat_init[seg.starts] | ~starts_in_row0
        row = seg.starts // t
        hx = [f[row].masked_fill(fresh[:, None, None], 0.0).transpose(0, 1) for f in first]
        padded = xb.new_zeros(n, seg.longest, xb.shape[-1])
        padded[seg.seg, seg.pos] = xb.reshape(b * t, -1)
        packed = pack_padded_sequence(padded, seg.lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        y_packed, final = self._call_rnn(packed, hx)
        y, _ = pad_packed_sequence(y_packed, batch_first=True, total_length=seg.longest)
        y = from_segments(y, seg).view(b, t, -1)
        nxt = []
        for f in final:  # each segment's own final state, at its last step
            f = f.transpose(0, 1)
            nxt.append(f.new_zeros(b * t, *f.shape[1:]).index_copy(0, seg.ends, f).view(
                b, t, *f.shape[1:]))
        return y, nxt
