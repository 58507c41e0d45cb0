"""LSTM and GRU written out in plain torch ops: cells, multi-layer networks and the reset-aware loop.

``LSTMCell`` / ``GRUCell`` / ``LSTM`` / ``GRU`` compute what ``torch.nn``'s
classes of the same name compute and hold the same parameters under the same
names (``weight_ih_l0``, ``bias_hh_l1``, ...), so ``state_dict()`` goes back
and forth between the two. Being ordinary tensor ops, they run under
:func:`torch.vmap` (e.g. over a stack of parameter sets) where cuDNN/oneDNN
kernels cannot.

The networks also offer :meth:`LSTM.run_sequences` / :meth:`GRU.run_sequences`:
the same recurrence over ``[B, T]`` with a boolean ``reset`` mask that restarts
the state from zero at chosen steps (trajectory starts), and optionally every
step's state. :class:`~tdrl.modules.LSTMModule` uses it in recurrent mode:
no splitting or padding, so it also runs under ``vmap``.

Examples:
    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> ours, ref = LSTM(3, 4, num_layers=2), torch.nn.LSTM(3, 4, num_layers=2, batch_first=True)
    >>> _ = ref.load_state_dict(ours.state_dict())
    >>> x = torch.randn(2, 5, 3)
    >>> torch.testing.assert_close(ours(x)[0], ref(x)[0])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LSTMCell", "GRUCell", "LSTM", "GRU", "lstm_cell", "gru_cell"]


def lstm_cell(
    gates_x: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None
) -> tuple[Tensor, Tensor]:
    """One LSTM step from the input's gate pre-activations ``gates_x = x W_ih^T + b_ih``.

    Gate order as ``torch.nn.LSTM``: input, forget, cell, output. Returns the
    new ``(h, c)`` (``h`` before any projection).

    Examples:
        >>> h, c = lstm_cell(torch.zeros(1, 8), torch.zeros(1, 2), torch.ones(1, 2),
        ...                  torch.zeros(8, 2), None)
        >>> c  # forget gate sigmoid(0) = 0.5 keeps half, the cell input tanh(0) adds nothing
        tensor([[0.5000, 0.5000]])
    """
    gates = gates_x + F.linear(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_cell(gates_x: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """One GRU step from the input's gate pre-activations ``gates_x = x W_ih^T + b_ih``.

    Gate order as ``torch.nn.GRU``: reset, update, new; the reset gate scales
    the hidden part of the new gate (bias included).

    Examples:
        >>> gru_cell(torch.zeros(1, 6), torch.ones(1, 2), torch.zeros(6, 2), None)
        tensor([[0.5000, 0.5000]])
    """
    gh = F.linear(h, w_hh, b_hh)
    xr, xz, xn = gates_x.chunk(3, -1)
    hr, hz, hn = gh.chunk(3, -1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return n + z * (h - n)


def _check_cell_input(name: str, x: Tensor, states: tuple[Tensor, ...]) -> bool:
    if x.dim() not in (1, 2):
        raise ValueError(f"{name}: expected a 1-D or 2-D input, got shape {list(x.shape)}")
    for i, s in enumerate(states):
        if s.dim() != x.dim():
            raise ValueError(
                f"{name}: the input has shape {list(x.shape)} but state {i} has shape "
                f"{list(s.shape)} (expected {x.dim()}-D)"
            )
    return x.dim() == 2


class LSTMCell(nn.RNNCellBase):
    """``torch.nn.LSTMCell`` in plain torch ops (same parameters, same results; ``vmap``-able).

    Examples:
        >>> cell = LSTMCell(3, 4)
        >>> h, c = cell(torch.randn(2, 3))  # zero state when none is given
        >>> h.shape, c.shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
        >>> ref = torch.nn.LSTMCell(3, 4)
        >>> _ = ref.load_state_dict(cell.state_dict())
        >>> x, hc = torch.randn(5, 2, 3), (torch.randn(5, 2, 4), torch.randn(5, 2, 4))
        >>> out = torch.vmap(cell)(x, hc)  # one cell over 5 independent batches
        >>> torch.testing.assert_close(out[0][1], ref(x[1], (hc[0][1], hc[1][1]))[0])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """``(h', c')`` after one step from ``input`` and ``hx = (h, c)`` (zeros if ``None``)."""
        batched = _check_cell_input("LSTMCell", input, () if hx is None else tuple(hx))
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            h, c = zeros, zeros
        else:
            h, c = (hx[0], hx[1]) if batched else (hx[0].unsqueeze(0), hx[1].unsqueeze(0))
        h, c = lstm_cell(F.linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh,
                         self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(nn.RNNCellBase):
    """``torch.nn.GRUCell`` in plain torch ops (same parameters, same results; ``vmap``-able).

    Examples:
        >>> cell, ref = GRUCell(3, 4), torch.nn.GRUCell(3, 4)
        >>> _ = ref.load_state_dict(cell.state_dict())
        >>> x, h = torch.randn(2, 3), torch.randn(2, 4)
        >>> torch.testing.assert_close(cell(x, h), ref(x, h))
        >>> cell(torch.randn(3)).shape  # unbatched
        torch.Size([4])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """``h'`` after one step from ``input`` and ``hx`` (zeros if ``None``)."""
        batched = _check_cell_input("GRUCell", input, () if hx is None else (hx,))
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        else:
            h = hx if batched else hx.unsqueeze(0)
        h = gru_cell(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return h if batched else h.squeeze(0)


class _PythonRNN(nn.RNNBase):
    """Shared checks and layer loop of :class:`LSTM` and :class:`GRU` (a ``torch.nn.RNNBase``)."""

    _n_states = 1

    def _weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        # read by name on every call: tensordict's to_module / vmap swap the attributes
        sfx = f"_l{layer}"
        if self.bias:
            return (getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx),
                    getattr(self, "bias_ih" + sfx), getattr(self, "bias_hh" + sfx))
        return getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx), None, None

    def _state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    def _batch_major(self, input: Tensor) -> tuple[Tensor, bool]:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name} takes a tensor input, got {type(input).__name__} "
                            "(packed sequences are not supported)")
        if input.dim() not in (2, 3):
            raise ValueError(f"{name}: expected a 2-D (unbatched) or 3-D input, got shape "
                             f"{list(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected {self.input_size} input features, got shape "
                             f"{list(input.shape)}")
        if input.dim() == 2:
            return input.unsqueeze(0), True
        return (input if self.batch_first else input.transpose(0, 1)), False

    def _initial(self, x: Tensor, hx: tuple[Tensor, ...] | None, unbatched: bool) -> list[Tensor]:
        b = x.shape[0]
        if hx is None:
            return [x.new_zeros(self.num_layers, b, size) for size in self._state_sizes()]
        states = []
        for i, (s, size) in enumerate(zip(hx, self._state_sizes())):
            s = s.unsqueeze(1) if unbatched else s
            if s.shape != (self.num_layers, b, size):
                raise ValueError(
                    f"{type(self).__name__}: state {i} must have shape "
                    f"[num_layers={self.num_layers}, batch={b}, {size}], got {list(s.shape)}"
                )
            states.append(s)
        return states

    def _layer(self, layer: int, x: Tensor, state: list[Tensor], reset: Tensor | None,
               steps: bool) -> tuple[Tensor, list[Tensor], list[Tensor] | None]:
        raise NotImplementedError

    def run_sequences(
        self,
        input: Tensor,
        hx: tuple[Tensor, ...] | None = None,
        reset: Tensor | None = None,
        *,
        step_states: bool = False,
    ) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...] | None]:
        """The recurrence over batch-major ``input`` ``[B, T, F]``, restarting at ``reset`` steps.

        Where ``reset[b, t]`` is True the state entering step ``t`` of row
        ``b`` is zero (a trajectory start), whatever came before. Returns the
        output ``[B, T, H_out]``, the final states (each ``[num_layers, B, *]``)
        and, with ``step_states=True``, every step's states (each
        ``[B, T, num_layers, *]``; else ``None``).

        Examples:
            >>> gru = GRU(3, 4)
            >>> x = torch.randn(1, 5, 3)
            >>> reset = torch.tensor([[False, False, True, False, False]])
            >>> y, _, _ = gru.run_sequences(x, None, reset)
            >>> torch.testing.assert_close(y[:, 2:], gru(x[:, 2:])[0])  # step 2 starts afresh
        """
        x = input
        b, t = x.shape[0], x.shape[1]
        states = self._initial(x, hx, False)
        if reset is not None and reset.shape != (b, t):
            raise ValueError(f"{type(self).__name__}.run_sequences: reset must have shape "
                             f"[{b}, {t}], got {list(reset.shape)}")
        finals: list[list[Tensor]] = [[] for _ in states]
        per_step: list[list[Tensor]] = [[] for _ in states]
        for layer in range(self.num_layers):
            x, last, seq = self._layer(layer, x, [s[layer] for s in states], reset, step_states)
            for i, s in enumerate(last):
                finals[i].append(s)
                if seq is not None:
                    per_step[i].append(seq[i])
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        final = tuple(torch.stack(f, 0) for f in finals)
        steps = tuple(torch.stack(p, 2) for p in per_step) if step_states else None
        return x, final, steps

    def _forward(self, input: Tensor, hx: tuple[Tensor, ...] | None) -> tuple[Tensor, tuple]:
        x, unbatched = self._batch_major(input)
        states = self._initial(x, hx, unbatched)
        y, final, _ = self.run_sequences(x, tuple(states))
        if unbatched:
            return y.squeeze(0), tuple(s.squeeze(1) for s in final)
        return (y if self.batch_first else y.transpose(0, 1)), final


class LSTM(_PythonRNN):
    """``torch.nn.LSTM`` in plain torch ops: same parameters and results, ``vmap``-able.

    As TorchRL's class, ``batch_first`` defaults to ``True`` and the argument
    order is ``(input_size, hidden_size, num_layers, batch_first, bias, ...)``.
    ``proj_size`` is supported; ``bidirectional=True`` raises
    ``NotImplementedError``. Dropout (training mode) applies between layers,
    as in ``torch.nn.LSTM``.

    Examples:
        >>> lstm = LSTM(input_size=3, hidden_size=4, num_layers=2)
        >>> y, (h, c) = lstm(torch.randn(5, 7, 3))        # [B, T, F], zero initial state
        >>> y.shape, h.shape, c.shape
        (torch.Size([5, 7, 4]), torch.Size([2, 5, 4]), torch.Size([2, 5, 4]))
        >>> params = torch.func.stack_module_state([LSTM(3, 4), LSTM(3, 4)])[0]
        >>> shell = LSTM(3, 4, device="meta")
        >>> def run(p, x):  # two LSTMs in one vectorised call
        ...     return torch.func.functional_call(shell, p, (x,))[0]
        >>> torch.vmap(run, in_dims=(0, None))(params, torch.randn(5, 7, 3)).shape
        torch.Size([2, 5, 7, 4])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        batch_first: bool = True,
        bias: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if bidirectional:
            raise NotImplementedError("tdrl's python LSTM is unidirectional; use torch.nn.LSTM "
                                      "for bidirectional=True")
        super().__init__("LSTM", input_size, hidden_size, num_layers=num_layers, bias=bias,
                         batch_first=batch_first, dropout=float(dropout), bidirectional=False,
                         proj_size=proj_size, device=device, dtype=dtype)

    def _state_sizes(self) -> tuple[int, ...]:
        return (self.proj_size or self.hidden_size, self.hidden_size)

    def _layer(self, layer, x, state, reset, steps):
        w_ih, w_hh, b_ih, b_hh = self._weights(layer)
        w_hr = getattr(self, f"weight_hr_l{layer}") if self.proj_size else None
        gates_x = F.linear(x, w_ih, b_ih)  # every step's input projection in one matmul
        h, c = state
        hs, cs = [], []
        for t in range(x.shape[1]):
            if reset is not None:
                r = reset[:, t, None]
                h, c = h.masked_fill(r, 0.0), c.masked_fill(r, 0.0)
            h, c = lstm_cell(gates_x[:, t], h, c, w_hh, b_hh)
            if w_hr is not None:
                h = F.linear(h, w_hr)
            hs.append(h)
            cs.append(c)
        out = torch.stack(hs, 1)
        return out, [h, c], ([out, torch.stack(cs, 1)] if steps else None)

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``output, (h_n, c_n)`` exactly as ``torch.nn.LSTM.forward``."""
        return self._forward(input, hx)  # type: ignore[return-value]


class GRU(_PythonRNN):
    """``torch.nn.GRU`` in plain torch ops: same parameters and results, ``vmap``-able.

    As TorchRL's class, ``batch_first`` defaults to ``True``;
    ``bidirectional=True`` raises ``NotImplementedError``.

    Examples:
        >>> gru, ref = GRU(3, 4, num_layers=2), torch.nn.GRU(3, 4, num_layers=2, batch_first=True)
        >>> _ = ref.load_state_dict(gru.state_dict())
        >>> x, h0 = torch.randn(5, 7, 3), torch.randn(2, 5, 4)
        >>> torch.testing.assert_close(gru(x, h0)[1], ref(x, h0)[1])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if bidirectional:
            raise NotImplementedError("tdrl's python GRU is unidirectional; use torch.nn.GRU "
                                      "for bidirectional=True")
        super().__init__("GRU", input_size, hidden_size, num_layers=num_layers, bias=bias,
                         batch_first=batch_first, dropout=float(dropout), bidirectional=False,
                         device=device, dtype=dtype)

    def _layer(self, layer, x, state, reset, steps):
        w_ih, w_hh, b_ih, b_hh = self._weights(layer)
        gates_x = F.linear(x, w_ih, b_ih)
        (h,) = state
        hs = []
        for t in range(x.shape[1]):
            if reset is not None:
                h = h.masked_fill(reset[:, t, None], 0.0)
            h = gru_cell(gates_x[:, t], h, w_hh, b_hh)
            hs.append(h)
        out = torch.stack(hs, 1)
        return out, [h], ([out] if steps else None)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``output, h_n`` exactly as ``torch.nn.GRU.forward``."""
        y, (h,) = self._forward(input, None if hx is None else (hx,))
        return y, h
