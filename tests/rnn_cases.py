"""Shared helpers of the recurrent-module tests: builders and a step-by-step reference."""
from __future__ import annotations

import torch
from tensordict import TensorDict

from tdrl.modules import GRUModule, LSTMModule

F_IN, H = 3, 5


def make(kind: str, python_based: bool, num_layers: int = 1, **kw):
    """An LSTMModule / GRUModule reading "obs" with the default state keys."""
    cls = LSTMModule if kind == "lstm" else GRUModule
    return cls(F_IN, H, num_layers=num_layers, in_key="obs", out_key="feat",
               python_based=python_based, **kw)


def state_keys(module) -> list[str]:
    return list(module.in_keys[1:-1])


def batch(module, b: int, t: int, is_init: torch.Tensor, *, stored: bool = True,
          seed: int = 0) -> TensorDict:
    """A [b, t] recurrent-mode batch; with ``stored`` every step carries a random state."""
    g = torch.Generator().manual_seed(seed)
    td = TensorDict(obs=torch.randn(b, t, F_IN, generator=g), is_init=is_init.view(b, t, 1),
                    batch_size=[b, t])
    if stored:
        for key, size in zip(state_keys(module), module._sizes):
            td[key] = torch.randn(b, t, module._layers, size, generator=g)
    return td


def alone(module, td: TensorDict) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Each trajectory of a [B, T] batch run ALONE, one step at a time, through the raw RNN.

    A trajectory starting at an is_init step starts from zeros; the one running
    at a row's first step (is_init False there) from the state stored at that
    step. Returns the outputs [B, T, H], the state after each step
    [B, T, layers, H] per state, and the end mask (last step of each trajectory).
    """
    rnn = getattr(module, module._rnn_attr)
    lstm = len(module._sizes) == 2
    b, t = td.shape
    init = td["is_init"].view(b, t)
    ys = torch.zeros(b, t, module._out_size)
    states = [torch.zeros(b, t, module._layers, size) for size in module._sizes]
    ends = torch.zeros(b, t, dtype=torch.bool)
    for row in range(b):
        for step in range(t):
            if step == 0 or init[row, step]:
                if init[row, step]:
                    hx = [torch.zeros(module._layers, 1, size) for size in module._sizes]
                else:
                    hx = [td[k][row, 0].unsqueeze(1) for k in state_keys(module)]
            x = td["obs"][row, step].view(1, 1, -1)
            y, new = rnn(x, tuple(hx) if lstm else hx[0])
            hx = list(new) if lstm else [new]
            ys[row, step] = y.view(-1)
            for i, s in enumerate(hx):
                states[i][row, step] = s.transpose(0, 1)[0]
            ends[row, step] = step == t - 1 or bool(init[row, step + 1])
    return ys, states, ends
