"""Rollout collectors: a local one and a Ray one with the same interface.

Both yield ``[T, N]`` :class:`~tensordict.TensorDict` batches (layout in
:mod:`tdrl.collectors.base`), take new weights with
``update_policy_weights_()`` and release their envs / workers with
``shutdown()`` (or a ``with`` block). Ray is imported only when a
:class:`RayCollector` is built.

Examples:
    >>> import functools
    >>> from tdrl.collectors import LocalCollector, gym_vector_env
    >>> from tdrl.modules import MLP, QValueActor
    >>> qnet = QValueActor(MLP(in_features=4, out_features=2), in_keys=["observation"],
    ...                    action_space="categorical")
    >>> with LocalCollector(functools.partial(gym_vector_env, "CartPole-v1", 4), qnet,
    ...                     steps_per_batch=8, total_frames=64) as collector:
    ...     shapes = [tuple(batch.batch_size) for batch in collector]
    >>> shapes
    [(8, 4), (8, 4)]
"""

from __future__ import annotations

from tdrl.collectors.base import (
    Collector,
    CollectorError,
    EnvDataError,
    EnvRunner,
    WorkerError,
    gym_vector_env,
)
from tdrl.collectors.distributed import RayCollector, init_ray
from tdrl.collectors.local import LocalCollector

__all__ = [
    "Collector",
    "CollectorError",
    "EnvDataError",
    "EnvRunner",
    "LocalCollector",
    "RayCollector",
    "WorkerError",
    "gym_vector_env",
    "init_ray",
]
