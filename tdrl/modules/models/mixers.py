"""Value mixers for cooperative multi-agent Q-learning: ``Mixer``, ``VDNMixer``, ``QMixer``.

A mixer turns each agent's chosen-action value ``[*B, n_agents, 1]`` (and, for QMIX, a
global state ``[*B, *state_shape]``) into one team value ``[*B, 1]``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Mixer", "VDNMixer", "QMixer"]


class Mixer(nn.Module):
    """Base mixer: checks the inputs and the output shape around :meth:`mix`.

    Args:
        n_agents: number of agents.
        needs_state: whether :meth:`mix` reads a global state (second input).
        state_shape: the state's shape without batch dims.
        device: where the mixer's parameters live.

    Examples:
        >>> import torch
        >>> from tdrl.modules.models.mixers import Mixer
        >>> class MaxMixer(Mixer):
        ...     def mix(self, chosen_action_value, state):
        ...         return chosen_action_value.amax(dim=-2)
        >>> MaxMixer(n_agents=3, needs_state=False, state_shape=(), device=None)(
        ...     torch.tensor([[[1.0], [4.0], [2.0]]]))
        tensor([[4.]])
    """

    def __init__(
        self,
        n_agents: int,
        needs_state: bool,
        state_shape: Sequence[int] | torch.Size,
        device: torch.device | str | None,
    ) -> None:
        super().__init__()
        if isinstance(n_agents, bool) or not isinstance(n_agents, int) or n_agents < 1:
            raise ValueError(f"n_agents must be a positive int, got {n_agents!r}")
        self.n_agents = n_agents
        self.needs_state = bool(needs_state)
        self.state_shape = torch.Size(state_shape)
        self.device = device

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """``chosen_action_value`` ``[*B, n_agents, 1]`` (+ ``state``) -> team value ``[*B, 1]``."""
        name = type(self).__name__
        if self.needs_state:
            if len(inputs) != 2:
                raise ValueError(
                    f"{name} takes (chosen_action_value, state): Mixer that needs state was "
                    f"passed more than 2 inputs or fewer, got {len(inputs)}"
                )
            value, state = inputs
            n = len(self.state_shape)
            if state.ndim < n or state.shape[state.ndim - n :] != self.state_shape:
                raise ValueError(
                    f"{name}: Mixer network expected state with ending shape "
                    f"{tuple(self.state_shape)}, got state of shape {tuple(state.shape)}"
                )
        else:
            if len(inputs) != 1:
                raise ValueError(
                    f"{name} takes (chosen_action_value,) only: Mixer that doesn't need state "
                    f"was passed more than 1 input, got {len(inputs)}"
                )
            value, state = inputs[0], None
        if value.ndim < 2 or value.shape[-2:] != (self.n_agents, 1):
            raise ValueError(
                f"{name}: Mixer network expected chosen_action_value with last 2 dimensions "
                f"{(self.n_agents, 1)}, got shape {tuple(value.shape)}"
            )
        batch = value.shape[:-2]
        if state is not None and state.shape[: state.ndim - len(self.state_shape)] != batch:
            raise ValueError(
                f"{name}: state batch dims {tuple(state.shape[: state.ndim - len(self.state_shape)])} "
                f"differ from chosen_action_value batch dims {tuple(batch)}"
            )
        out = self.mix(value, state)
        if out.shape != (*batch, 1):
            raise ValueError(f"{name}.mix returned shape {tuple(out.shape)}, expected {(*batch, 1)}")
        return out

    def mix(self, chosen_action_value: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        """``[*B, n_agents, 1]`` (and the state) -> ``[*B, 1]``; subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement mix()")


class VDNMixer(Mixer):
    """Value-Decomposition Networks (Sunehag et al. 2017): the team value is the sum.

    Examples:
        >>> import torch
        >>> from tdrl.modules import VDNMixer
        >>> VDNMixer(n_agents=2, device="cpu")(torch.tensor([[[1.0], [2.5]]]))
        tensor([[3.5000]])
    """

    def __init__(self, n_agents: int, device: torch.device | str | None) -> None:
        super().__init__(n_agents=n_agents, needs_state=False, state_shape=(), device=device)

    def mix(self, chosen_action_value: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        return chosen_action_value.sum(dim=-2)


class QMixer(Mixer):
    """QMIX (Rashid et al. 2018): a state-conditioned mixing network, monotonic in each agent's value.

    Hypernetworks read the flattened state and emit the mixing weights (made
    non-negative with ``abs``), the hidden bias and a state value ``V(s)``:
    ``q_tot = elu(q @ |W1(s)| + b1(s)) @ |W2(s)| + V(s)``.

    Args:
        state_shape: the state's shape without batch dims.
        mixing_embed_dim: width of the mixing layer.
        n_agents: number of agents.
        device: where the parameters live.

    Examples:
        >>> import torch
        >>> from tdrl.modules import QMixer
        >>> mixer = QMixer(state_shape=(10,), mixing_embed_dim=16, n_agents=3, device="cpu")
        >>> mixer(torch.randn(32, 3, 1), torch.randn(32, 10)).shape
        torch.Size([32, 1])
        >>> q = torch.zeros(1, 3, 1, requires_grad=True)
        >>> mixer(q, torch.randn(1, 10)).sum().backward()
        >>> bool((q.grad >= 0).all())   # monotonic in every agent's value
        True
    """

    def __init__(
        self,
        state_shape: Sequence[int] | torch.Size,
        mixing_embed_dim: int,
        n_agents: int,
        device: torch.device | str | None,
    ) -> None:
        super().__init__(n_agents=n_agents, needs_state=True, state_shape=state_shape, device=device)
        if mixing_embed_dim < 1:
            raise ValueError(f"mixing_embed_dim must be positive, got {mixing_embed_dim}")
        self.embed_dim = mixing_embed_dim
        self.state_dim = math.prod(self.state_shape)
        s, e = self.state_dim, mixing_embed_dim
        self.hyper_w_1 = nn.Linear(s, e * n_agents, device=device)
        self.hyper_w_final = nn.Linear(s, e, device=device)
        self.hyper_b_1 = nn.Linear(s, e, device=device)
        self.V = nn.Sequential(
            nn.Linear(s, e, device=device), nn.ReLU(), nn.Linear(e, 1, device=device)
        )

    def mix(self, chosen_action_value: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        assert state is not None
        batch = chosen_action_value.shape[:-2]
        s = state.reshape(*batch, self.state_dim)
        w1 = self.hyper_w_1(s).abs().unflatten(-1, (self.n_agents, self.embed_dim))
        b1 = self.hyper_b_1(s).unsqueeze(-2)
        hidden = F.elu(chosen_action_value.transpose(-1, -2) @ w1 + b1)  # [*B, 1, e]
        w2 = self.hyper_w_final(s).abs().unsqueeze(-1)  # [*B, e, 1]
        return (hidden @ w2).squeeze(-1) + self.V(s)
