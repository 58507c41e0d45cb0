"""The body of one Ray collector worker (made a Ray actor by :class:`~tdrl.collectors.RayCollector`).

Plain Python: Ray is imported inside the methods that need it.

Examples:
    >>> import functools, torch
    >>> from tdrl.collectors import gym_vector_env
    >>> from tdrl.modules import MLP, QValueActor
    >>> q = QValueActor(MLP(in_features=4, out_features=2), in_keys=["observation"],
    ...                 action_space="categorical")
    >>> w = RolloutWorker(0, functools.partial(gym_vector_env, "CartPole-v1", 2), q,
    ...                   {"policy_keys": ["action"]}, seed=0)
    >>> w.runner.num_envs, sorted(weights_to_numpy(q))[:1]
    (2, ['module.0.module.0.bias'])
    >>> w.close()
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from tdrl.collectors.base import EnvRunner

__all__ = ["RESTART_SEED_OFFSET", "RolloutWorker", "weights_to_numpy"]

RESTART_SEED_OFFSET = 104_729


def weights_to_numpy(policy: Any) -> dict[str, np.ndarray]:
    """The policy's state as numpy arrays (what goes into Ray's object store)."""
    return {k: v.detach().cpu().numpy() for k, v in policy.state_dict().items()}


class RolloutWorker:
    """The body of one Ray actor (made remote in :class:`RayCollector`)."""

    def __init__(
        self,
        index: int,
        create_env_fn: Any,
        policy: Any,
        runner_kwargs: dict,
        seed: int,
        policy_wrapper: Callable[[int, Any], Any] | None = None,
    ) -> None:
        torch.set_num_threads(1)
        self.index, self.seed = index, seed
        self.policy = policy  # deserialized in this process: the worker's own copy
        self.version = -1
        torch.manual_seed(seed + 7919 * (index + 1))
        # the module that acts (e.g. the copy plus this worker's exploration); weights load
        # into ``policy``, which it wraps
        acting = policy if policy_wrapper is None else policy_wrapper(index, policy)
        self.runner = EnvRunner(
            create_env_fn, acting, seed=seed, worker_index=index, **runner_kwargs
        )

    def reseed(self, restarts: int) -> int:
        """After a restart: new seeds, so the redone share does not replay the lost episodes.

        Returns the process id, so the caller can tell a restarted process from the old one.
        """
        seed = self.seed + restarts * RESTART_SEED_OFFSET
        torch.manual_seed(seed + 7919 * (self.index + 1))
        self.runner.reset(seed)
        return os.getpid()

    def info(self) -> dict[str, Any]:
        import ray

        return {
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            "num_envs": self.runner.num_envs,
        }

    def collect(self, steps: int, weights: list, version: int) -> tuple[dict, float]:
        if version != self.version:
            import ray

            state = ray.get(weights[0])
            self.policy.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
            self.version = version
        start = time.perf_counter()
        arrays = self.runner.run(steps)
        return arrays, time.perf_counter() - start

    # pickled to bytes here: arrays Ray deserializes are read-only, and the env writes into its own
    def state_dict(self) -> bytes:
        return pickle.dumps({**self.runner.state_dict(), "torch_rng": torch.get_rng_state()})

    def load_state_dict(self, blob: bytes) -> None:
        state = pickle.loads(blob)
        self.runner.load_state_dict(state)
        torch.set_rng_state(state["torch_rng"])

    def close(self) -> None:
        self.runner.close()
