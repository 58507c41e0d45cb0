"""``LSTMModule`` and ``GRUModule``: an LSTM / GRU as a TensorDict module (TorchRL's path).

Input layout, modes and the ``is_init`` convention are those of
:mod:`tdrl.modules.tensordict_module.rnn_base` (read it first); in short:

- **sequential mode** (default): one step per call, ``[*batch, F]`` in; the
  state comes in under the state keys and leaves under ``("next", key)``;
  ``is_init`` True restarts an entry from zeros;
- **recurrent mode** (``with set_recurrent_mode(True):``): a ``[*B, T]``
  TensorDict, TIME LAST; ``is_init[..., t]`` True where a trajectory starts.
  Every trajectory in the batch, including those starting mid-row, gets the
  outputs it would get alone, step by step.

This path also exports the python ``LSTM``/``GRU`` and their cells, and
``set_recurrent_mode`` / ``recurrent_mode``, as TorchRL's module does.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from tdrl.envs.utils import step_mdp
    >>> lstm = LSTMModule(input_size=3, hidden_size=8, in_key="obs", out_key="feat")
    >>> td = TensorDict(obs=torch.randn(4, 3), is_init=torch.ones(4, 1, dtype=torch.bool),
    ...                 batch_size=[4]).update(lstm.initial_state([4]))
    >>> td = lstm(td)                         # one step for 4 envs
    >>> td["feat"].shape, td["next", "recurrent_state_c"].shape
    (torch.Size([4, 8]), torch.Size([4, 1, 8]))
    >>> td = step_mdp(td)                     # the next state becomes the state
    >>> td["is_init"][:] = False
    >>> td["obs"] = torch.randn(4, 3)
    >>> lstm(td)["feat"].shape
    torch.Size([4, 8])
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from tensordict.utils import NestedKey
from torch import Tensor, nn

from tdrl.modules.tensordict_module.rnn_base import RecurrentModuleBase
from tdrl.modules.tensordict_module.rnn_cells import GRU, LSTM, GRUCell, LSTMCell
from tdrl.modules.tensordict_module.rnn_mode import recurrent_mode, set_recurrent_mode

__all__ = [
    "LSTMModule",
    "GRUModule",
    "LSTM",
    "GRU",
    "LSTMCell",
    "GRUCell",
    "set_recurrent_mode",
    "recurrent_mode",
]

Backend = Literal["auto", "pad", "scan", "triton"]


def _build_rnn(
    kind: str,
    given: nn.Module | None,
    torch_cls: type,
    python_cls: type,
    python_based: bool,
    input_size: int | None,
    hidden_size: int | None,
    batch_first: bool,
    bidirectional: bool,
    **kwargs: Any,
) -> nn.Module:
    """The RNN of an ``LSTMModule`` / ``GRUModule``: ``given`` (checked) or a new one.

    ``kind`` is ``"LSTM"`` or ``"GRU"`` (the messages name the module and its keyword).
    """
    name, arg = f"{kind}Module", kind.lower()
    if given is None:
        if not batch_first:
            raise ValueError(f"{name}: the {kind} must have batch_first=True")
        if not hidden_size or input_size is None:
            raise ValueError(f"{name}: pass input_size and hidden_size (or {arg}=)")
        if bidirectional:
            raise ValueError(f"{name}: a bidirectional {kind} reads future steps, which a "
                             "policy acting step by step cannot see; use bidirectional=False")
        cls = python_cls if python_based else torch_cls
        return cls(input_size, hidden_size, batch_first=True, **kwargs)
    if input_size is not None or hidden_size is not None:
        raise ValueError(f"{name}: pass either {arg}= or the size arguments, not both")
    if not isinstance(given, (torch_cls, python_cls)):
        raise TypeError(f"{name}: {arg}= must be a torch.nn.{kind} or tdrl {kind}, got "
                        f"{type(given).__name__}")
    return given


class LSTMModule(RecurrentModuleBase):
    """An LSTM reading and writing a TensorDict, step by step or over whole sequences.

    ``in_keys = [value, h, c, "is_init"]``, ``out_keys = [output, ("next", h),
    ("next", c)]``; ``in_key=`` / ``out_key=`` use the default state keys
    ``recurrent_state_h`` / ``recurrent_state_c``. States are
    ``[*batch, num_layers, H]`` (``h`` has ``proj_size`` features when set).

    Input layout and modes: see :mod:`~tdrl.modules.tensordict_module.rnn_base`.
    Recurrent mode takes a ``[*B, T]`` TensorDict (time is the LAST batch dim)
    with ``is_init`` marking each trajectory's first step; each trajectory
    starts from zeros (or, for one already running at a row's first step, from
    the state stored there) and never sees another's state.

    A sequential call without the state: entries with ``is_init`` True start
    from zeros; others are allowed zeros once (a rollout's first step), and a
    second such call in a row raises ``KeyError`` naming the missing keys
    (TorchRL silently restarts from zeros every step, pytorch/rl #2327).

    Args:
        input_size, hidden_size, num_layers, bias, dropout, proj_size:
            as ``torch.nn.LSTM``.
        batch_first: must be ``True`` (TorchRL's check).
        bidirectional: must be ``False``: a policy cannot read future steps.
        python_based: use tdrl's python :class:`LSTM` (``vmap``-able) instead of
            ``torch.nn.LSTM``; same parameters, switch any time with
            :meth:`make_python_based` / :meth:`make_cudnn_based`.
        recurrent_backend: ``"pad"`` (default) or ``"auto"``; TorchRL's
            ``"scan"`` / ``"triton"`` raise ``NotImplementedError``, anything
            else ``ValueError``.
        recurrent_compute_dtype, recurrent_matmul_precision: accepted for
            TorchRL compatibility; they only tune TorchRL's triton kernel.
        recurrent_recompute: must be ``"none"``.

    Keyword Args:
        in_key / in_keys, out_key / out_keys: exactly one of each.
        device: where the parameters live.
        lstm: an ``nn.LSTM`` (``batch_first=True``) or tdrl ``LSTM`` to wrap
            instead of building one (then no size arguments).
        default_recurrent_mode: the mode outside any ``set_recurrent_mode``
            block (default ``False``: sequential).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.modules import set_recurrent_mode
        >>> lstm = LSTMModule(3, 8, num_layers=2, in_keys=["obs", "h", "c"],
        ...                   out_keys=["feat", ("next", "h"), ("next", "c")])
        >>> is_init = torch.zeros(2, 5, 1, dtype=torch.bool)
        >>> is_init[:, 0] = True
        >>> is_init[0, 3] = True       # row 0: a trajectory of 3 steps, then one of 2
        >>> data = TensorDict(obs=torch.randn(2, 5, 3), is_init=is_init, batch_size=[2, 5])
        >>> with set_recurrent_mode(True):
        ...     data = lstm(data)
        >>> data["feat"].shape, data["next", "h"].shape
        (torch.Size([2, 5, 8]), torch.Size([2, 5, 2, 8]))
        >>> lstm.recurrent_state_spec([2])["h"].shape
        torch.Size([2, 2, 8])
    """

    DEFAULT_IN_KEYS = ["recurrent_state_h", "recurrent_state_c"]
    DEFAULT_OUT_KEYS = [("next", "recurrent_state_h"), ("next", "recurrent_state_c")]
    _rnn_attr = "lstm"

    def __init__(
        self,
        input_size: int | None = None,
        hidden_size: int | None = None,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        proj_size: int = 0,
        bidirectional: bool = False,
        python_based: bool = False,
        recurrent_backend: Backend = "pad",
        recurrent_compute_dtype: torch.dtype = torch.float32,
        recurrent_recompute: Literal["none", "full"] = "none",
        recurrent_matmul_precision: str = "auto",
        *,
        in_key: NestedKey | None = None,
        in_keys: Sequence[NestedKey] | None = None,
        out_key: NestedKey | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        device: torch.device | str | None = None,
        lstm: nn.LSTM | None = None,
        default_recurrent_mode: bool | None = None,
    ) -> None:
        super().__init__()
        lstm = _build_rnn("LSTM", lstm, nn.LSTM, LSTM, python_based, input_size, hidden_size,
                          batch_first, bidirectional, num_layers=num_layers, bias=bias,
                          dropout=dropout, proj_size=proj_size, device=device)
        self._setup(lstm, in_key=in_key, in_keys=in_keys, out_key=out_key, out_keys=out_keys,
                    recurrent_backend=recurrent_backend,
                    recurrent_recompute=recurrent_recompute,
                    default_recurrent_mode=default_recurrent_mode)

    @staticmethod
    def _state_sizes(rnn: nn.RNNBase) -> tuple[int, ...]:
        return (rnn.proj_size or rnn.hidden_size, rnn.hidden_size)

    def _call_rnn(self, x: Tensor, hx: list[Tensor] | None) -> tuple[Tensor, tuple]:
        y, (h, c) = self._call(x, None if hx is None else (hx[0], hx[1]))
        return y, (h, c)

    def make_python_based(self) -> LSTMModule:
        """Swaps in tdrl's python :class:`LSTM` (same parameter objects); returns ``self``."""
        return self if isinstance(self.lstm, LSTM) else self._swap_rnn(LSTM)

    def make_cudnn_based(self) -> LSTMModule:
        """Swaps in ``torch.nn.LSTM`` (same parameter objects); returns ``self``."""
        if isinstance(self.lstm, nn.LSTM):
            return self
        return self._swap_rnn(nn.LSTM)


class GRUModule(RecurrentModuleBase):
    """A GRU reading and writing a TensorDict, step by step or over whole sequences.

    ``in_keys = [value, h, "is_init"]``, ``out_keys = [output, ("next", h)]``;
    ``in_key=`` / ``out_key=`` use the default state key ``recurrent_state``.
    Everything else is as :class:`LSTMModule` (one state instead of two).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> gru = GRUModule(3, 8, in_key="obs", out_key="feat", python_based=True)
        >>> td = TensorDict(obs=torch.randn(3), is_init=torch.ones(1, dtype=torch.bool))
        >>> gru(td)["next", "recurrent_state"].shape   # no state needed at a trajectory start
        torch.Size([1, 8])
        >>> gru.initial_state([5])["recurrent_state"].shape
        torch.Size([5, 1, 8])
    """

    DEFAULT_IN_KEYS = ["recurrent_state"]
    DEFAULT_OUT_KEYS = [("next", "recurrent_state")]
    _rnn_attr = "gru"

    def __init__(
        self,
        input_size: int | None = None,
        hidden_size: int | None = None,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        python_based: bool = False,
        recurrent_backend: Backend = "pad",
        recurrent_compute_dtype: torch.dtype = torch.float32,
        recurrent_recompute: Literal["none", "full"] = "none",
        recurrent_matmul_precision: str = "auto",
        *,
        in_key: NestedKey | None = None,
        in_keys: Sequence[NestedKey] | None = None,
        out_key: NestedKey | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        device: torch.device | str | None = None,
        gru: nn.GRU | None = None,
        default_recurrent_mode: bool | None = None,
    ) -> None:
        super().__init__()
        gru = _build_rnn("GRU", gru, nn.GRU, GRU, python_based, input_size, hidden_size,
                         batch_first, bidirectional, num_layers=num_layers, bias=bias,
                         dropout=dropout, device=device)
        self._setup(gru, in_key=in_key, in_keys=in_keys, out_key=out_key, out_keys=out_keys,
                    recurrent_backend=recurrent_backend,
                    recurrent_recompute=recurrent_recompute,
                    default_recurrent_mode=default_recurrent_mode)

    @staticmethod
    def _state_sizes(rnn: nn.RNNBase) -> tuple[int, ...]:
        return (rnn.hidden_size,)

    def _call_rnn(self, x: Tensor, hx: list[Tensor] | None) -> tuple[Tensor, tuple]:
        y, h = self._call(x, None if hx is None else hx[0])
        return y, (h,)

    def make_python_based(self) -> GRUModule:
        """Swaps in tdrl's python :class:`GRU` (same parameter objects); returns ``self``."""
        return self if isinstance(self.gru, GRU) else self._swap_rnn(GRU)

    def make_cudnn_based(self) -> GRUModule:
        """Swaps in ``torch.nn.GRU`` (same parameter objects); returns ``self``."""
        if isinstance(self.gru, nn.GRU):
            return self
        return self._swap_rnn(nn.GRU)
