"""The in-process collector: the learner's own policy object steps one vector env.

Examples:
    >>> import functools
    >>> from tdrl.collectors import LocalCollector, gym_vector_env
    >>> from tdrl.modules import MLP, QValueActor
    >>> qnet = QValueActor(MLP(in_features=4, out_features=2), in_keys=["observation"],
    ...                    action_space="categorical")
    >>> c = LocalCollector(functools.partial(gym_vector_env, "CartPole-v1", 2), qnet,
    ...                    steps_per_batch=4, total_frames=16, policy_keys=["action"])
    >>> [b.numel() for b in c]
    [8, 8]
    >>> c.shutdown()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from tdrl.collectors.base import Collector, EnvRunner, nbytes, to_tensordict
from tdrl.envs.utils import ExplorationType

__all__ = ["LocalCollector"]


class LocalCollector(Collector):
    """Collect ``[steps_per_batch, num_envs]`` batches in this process (see :mod:`.base`).

    ``policy`` is used as is (no copy), so the learner's updates are seen at
    once and :meth:`update_policy_weights_` only loads weights given to it.

    Examples:
        >>> import functools
        >>> from tdrl.collectors import gym_vector_env
        >>> from tdrl.modules import MLP, QValueActor
        >>> qnet = QValueActor(MLP(in_features=4, out_features=2), in_keys=["observation"],
        ...                    action_space="categorical")
        >>> with LocalCollector(functools.partial(gym_vector_env, "CartPole-v1", 2), qnet,
        ...                     steps_per_batch=4) as c:
        ...     batch = next(iter(c))
        ...     c.update_policy_weights_(qnet.state_dict())
        >>> batch["next", "done"].shape, c.frames
        (torch.Size([4, 2]), 8)
    """

    def __init__(
        self,
        create_env_fn: Callable[[], Any],
        policy: Any,
        steps_per_batch: int,
        *,
        total_frames: int = -1,
        policy_keys: Sequence[str] | None = None,
        action_to_env: Callable[[torch.Tensor], np.ndarray] | None = None,
        exploration_type: Any = ExplorationType.RANDOM,
        seed: int | None = 0,
        device: Any = None,
    ) -> None:
        super().__init__()
        if steps_per_batch <= 0:
            raise ValueError(f"steps_per_batch must be > 0, got {steps_per_batch}")
        self.policy = policy
        self.steps_per_batch = int(steps_per_batch)
        self.total_frames = int(total_frames)
        self.device = device
        self.runner = EnvRunner(
            create_env_fn,
            policy,
            policy_keys=policy_keys,
            action_to_env=action_to_env,
            exploration_type=exploration_type,
            seed=seed,
            device=device,
        )
        self.num_envs = self.runner.num_envs

    def _next_batch(self) -> TensorDict:
        start = time.perf_counter()
        arrays = self.runner.run(self.steps_per_batch)
        mid = time.perf_counter()
        batch = to_tensordict(arrays, self.device)
        self.timing.update(
            collect_s=mid - start,
            transfer_s=time.perf_counter() - mid,
            bytes_in=nbytes(arrays),
            bytes_out=0,
        )
        return batch

    def update_policy_weights_(self, weights: dict[str, torch.Tensor] | None = None) -> None:
        """Load ``weights`` into the policy (nothing to do without: it is the learner's own)."""
        if weights is not None:
            self.policy.load_state_dict(weights)

    def state_dict(self) -> dict[str, Any]:
        return {"runners": [self.runner.state_dict()], "frames": self.frames}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.runner.load_state_dict(state["runners"][0])
        self.frames = int(state["frames"])

    def shutdown(self) -> None:
        self.runner.close()
