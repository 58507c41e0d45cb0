"""A replay buffer for continuous-action off-policy recipes (SAC).

Examples:
    >>> from tdrl.recipes.replay import ReplayBuffer
    >>> ReplayBuffer(capacity=8, obs_dim=3, act_dim=1).fields[1]
    'action'
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """Fixed-capacity ring of transitions in preallocated tensors; ``sample`` returns a tuple.

    Examples:
        >>> rb = ReplayBuffer(capacity=3, obs_dim=2, act_dim=1)
        >>> for _ in range(2):
        ...     rb.add(torch.zeros(2, 2), torch.ones(2, 1), torch.ones(2), torch.ones(2, 2),
        ...            torch.zeros(2))
        >>> len(rb), rb.pos
        (3, 1)
        >>> [t.shape[0] for t in rb.sample(5)]
        [5, 5, 5, 5, 5]
    """

    fields = ("observation", "action", "reward", "next_observation", "terminated")

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: Any = "cpu") -> None:
        self.capacity = capacity
        shapes = ((obs_dim,), (act_dim,), (), (obs_dim,), ())
        self.storage = [torch.zeros(capacity, *s, device=device) for s in shapes]
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, *values: torch.Tensor) -> None:
        n = values[0].shape[0]
        idx = (torch.arange(n) + self.pos) % self.capacity
        for store, value in zip(self.storage, values):
            store[idx.to(store.device)] = value.to(store.device, store.dtype)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), device=self.storage[0].device)
        return tuple(store[idx] for store in self.storage)

    def state_dict(self) -> dict[str, Any]:
        return {
            "storage": [s[: self.size].clone().cpu() for s in self.storage],
            "pos": self.pos,
            "size": self.size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.pos = int(state["size"]), int(state["pos"])
        for store, saved in zip(self.storage, state["storage"]):
            store[: self.size] = saved.to(store.device)
