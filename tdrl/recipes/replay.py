"""A uniform replay buffer for the off-policy recipes: a ring of transitions in one ``TensorDict``.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> rb = ReplayBuffer(capacity=4)
    >>> batch = TensorDict(observation=torch.zeros(3, 2), action=torch.zeros(3, dtype=torch.long),
    ...                    batch_size=[3])
    >>> rb.add(batch); rb.add(batch); len(rb)
    4
    >>> rb.sample(2)["observation"].shape
    torch.Size([2, 2])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDict

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """Fixed-capacity ring of transitions, sampled uniformly with the torch RNG.

    The storage is allocated on the first :meth:`add`, with the keys, shapes
    and dtypes of that batch (any transition layout: index or continuous
    actions, n-step discounts...); later batches must have the same layout.
    ``state_dict`` holds the filled part only.

    Examples:
        >>> from tensordict import TensorDict
        >>> rb = ReplayBuffer(capacity=2)
        >>> rb.add(TensorDict(x=torch.arange(3.0), batch_size=[3]))
        >>> sorted(rb.storage["x"].tolist()), rb.pos
        ([1.0, 2.0], 1)
    """

    def __init__(self, capacity: int, device: Any = "cpu") -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        self.storage: TensorDict | None = None
        self._columns: dict[str, torch.Tensor] = {}  # the storage's tensors, by key
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def _allocate(self, example: TensorDict) -> None:
        self.storage = example.apply(
            lambda x: torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype, device=self.device),
            batch_size=[self.capacity],
            device=self.device,
        )
        self._columns = dict(self.storage.items())

    def add(self, batch: TensorDict | Mapping[str, torch.Tensor]) -> None:
        """Append a batch of transitions (the oldest are overwritten once full).

        ``batch``: a ``TensorDict``, or a plain mapping of key to tensor (the
        acting hot path: no ``TensorDict`` built per env step).
        """
        n = next(iter(batch.values())).shape[0]
        if self.storage is None or self.pos + n > self.capacity:
            if not isinstance(batch, TensorDict):
                batch = TensorDict(dict(batch), batch_size=[n], device=self.device)
            if self.storage is None:
                self._allocate(batch)
            idx = (torch.arange(n) + self.pos) % self.capacity
            self.storage[idx] = batch
        else:  # no wrap-around: one slice write per key
            columns = self._columns
            if set(batch.keys()) != columns.keys():
                raise KeyError(
                    f"replay batch keys {sorted(batch.keys())} differ from the stored "
                    f"{sorted(columns)}"
                )
            end = self.pos + n
            for key, value in batch.items():
                columns[key][self.pos : end] = value
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> TensorDict:
        """``batch_size`` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,))
        return self.storage[idx]

    def sample_tensors(self, batch_size: int) -> dict[str, torch.Tensor]:
        """:meth:`sample` as a plain ``{key: tensor}`` dict (the same draw; no ``TensorDict``).

        Examples:
            >>> rb = ReplayBuffer(capacity=4)
            >>> rb.add({"x": torch.arange(4.0)})
            >>> _ = torch.manual_seed(0); a = rb.sample(3)["x"]
            >>> _ = torch.manual_seed(0); torch.equal(rb.sample_tensors(3)["x"], a)
            True
        """
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        # drawn on the CPU on every device (as sample); index_select: the same rows as
        # value[idx] without advanced indexing's set-up (~2.5x less time for a DQN minibatch)
        idx = torch.randint(0, self.size, (batch_size,)).to(self.device)
        return {key: value.index_select(0, idx) for key, value in self._columns.items()}

    def state_dict(self) -> dict[str, Any]:
        storage = None if self.storage is None else self.storage[: self.size].clone()
        return {"storage": storage, "pos": self.pos, "size": self.size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.pos = int(state["size"]), int(state["pos"])
        if state["storage"] is None:
            self.storage = None
            return
        self._allocate(state["storage"])
        self.storage[: self.size] = state["storage"].to(self.device)
