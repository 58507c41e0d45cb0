"""Generalized advantage estimation (Schulman et al. 2016) over a ``[T, N]`` rollout.

Examples:
    >>> import torch
    >>> adv = gae(torch.ones(2, 1), torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(1),
    ...           gamma=0.5, lam=1.0)
    >>> adv[:, 0].tolist()
    [1.5, 1.0]
"""

from __future__ import annotations

import torch

__all__ = ["gae"]


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """GAE(``lam``) advantages; ``dones[t]`` ends the episode at step ``t``, ``last_value``
    is the value of the observation after the last step."""
    advantages = torch.empty_like(rewards)
    next_adv = torch.zeros_like(last_value)
    next_value = last_value
    not_dones = 1.0 - dones
    for t in range(rewards.shape[0] - 1, -1, -1):
        not_done = not_dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        next_adv = delta + gamma * lam * not_done * next_adv
        advantages[t] = next_adv
        next_value = values[t]
    return advantages
