"""Collection on Ray workers for the recipes: the ``--workers`` / ``--ray-address`` options.

A recipe's config mixes in :class:`RemoteConfig`; the algorithm asks
:func:`open_collector` for its collector and gets ``None`` for the default
(its own envs, in process) or a :class:`~tdrl.collectors.RayCollector` whose
workers each run ``--num-envs`` envs with a copy of the algorithm's policy
module. Ray is imported only when ``--workers`` is given.

Examples:
    >>> import dataclasses
    >>> from tdrl.recipes.config import CommonConfig
    >>> @dataclasses.dataclass
    ... class Cfg(RemoteConfig, CommonConfig):
    ...     pass
    >>> cfg = Cfg()
    >>> cfg.workers, open_collector(cfg, policy=None, steps_per_batch=8) is None
    (0, True)
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tdrl.collectors import CollectorError, EnvDataError, RayCollector
from tdrl.collectors.distributed import check_ray_address, import_ray
from tdrl.recipes.config import NonFiniteError, RunFailure, TrainError, option
from tdrl.recipes.envs import make_vec_env

__all__ = [
    "ApexConfig",
    "RemoteConfig",
    "WorkerFailure",
    "apex_epsilons",
    "open_apex_collector",
    "open_collector",
]


@dataclasses.dataclass
class RemoteConfig:
    """The options of distributed collection (mixed into a recipe's config).

    Examples:
        >>> RemoteConfig(workers=-1).validate_remote()
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: --workers must be >= 0, got -1
    """

    workers: int = option(
        0, "collect on this many Ray workers (each runs --num-envs envs); 0: in this process"
    )
    ray_address: str = option(
        "", "address of an existing Ray cluster to join with --workers (default: start one here)"
    )

    def validate_remote(self) -> None:
        """Refuse what cannot work before anything is written (raises :class:`TrainError`).

        Ray missing, more workers than a local Ray instance has CPUs (one per
        worker), a ``--ray-address`` where nothing listens.
        """
        if self.workers < 0:
            raise TrainError(f"--workers must be >= 0, got {self.workers}")
        if self.ray_address and not self.workers:
            raise TrainError("--ray-address needs --workers N (N >= 1)")
        if not self.workers:
            return
        try:
            ray = import_ray()
            if self.ray_address:
                check_ray_address(self.ray_address)
        except CollectorError as err:
            raise TrainError(f"--ray-address: {err}" if self.ray_address else str(err)) from None
        if self.ray_address:
            return
        if ray.is_initialized():  # a session of this process (e.g. a notebook): its CPUs
            cpus, where = ray.cluster_resources().get("CPU", 0), "the running Ray session"
        else:
            import os

            cpus, where = os.cpu_count() or 1, "this machine (a local Ray instance)"
        if self.workers > cpus:
            raise TrainError(
                f"--workers {self.workers} needs {self.workers} CPUs (one per worker), but "
                f"{where} has {cpus:g}; use --workers {int(cpus)} or fewer, or join a cluster "
                "with --ray-address"
            )

    @property
    def total_envs(self) -> int:
        """Envs over all workers (``num_envs`` when collecting in process)."""
        return self.num_envs * max(self.workers, 1)  # type: ignore[attr-defined]


class WorkerFailure(RunFailure):
    """A collector worker kept failing; the run stops after saving a checkpoint.

    Examples:
        >>> WorkerFailure("collector worker 1 failed 3 times", step=256).exit_status
        1
    """


class _RunCollector(RayCollector):
    """The recipes' Ray collector: its errors become the run's failures (exit 1, a summary).

    A NaN / inf from a worker's env is a :class:`~tdrl.recipes.config.NonFiniteError`
    naming the worker, the sub-env and the step (no checkpoint of the state
    after it is written); a worker that keeps failing while its state is saved
    or loaded is a :class:`WorkerFailure`.
    """

    def _next_batch(self) -> Any:
        try:
            return super()._next_batch()
        except EnvDataError as err:
            raise NonFiniteError(err.where, err.step) from None

    def state_dict(self) -> dict[str, Any]:
        try:
            return super().state_dict()
        except CollectorError as err:
            raise WorkerFailure(f"{err} (while saving a checkpoint)", self.frames) from None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            super().load_state_dict(state)
        except CollectorError as err:
            raise WorkerFailure(f"{err} (while loading the checkpoint)", self.frames) from None


def open_collector(
    cfg: Any,
    policy: Any,
    steps_per_batch: int,
    *,
    policy_keys: Sequence[str] | None = None,
    action_to_env: Callable | None = None,
    **collector_kwargs: Any,
) -> RayCollector | None:
    """``None`` without ``--workers``, else a Ray collector over ``cfg.workers`` workers.

    Worker failures are logged to stderr; bad setups (Ray missing, too few
    CPUs) raise :class:`~tdrl.recipes.config.TrainError`; a NaN / inf from a
    worker's env raises :class:`~tdrl.recipes.config.NonFiniteError`.
    """
    if not cfg.workers:
        return None
    try:
        return _RunCollector(
            functools.partial(make_vec_env, cfg.env, cfg.num_envs),
            policy,
            steps_per_batch,
            num_workers=cfg.workers,
            policy_keys=policy_keys,
            action_to_env=action_to_env,
            seed=cfg.seed,
            ray_address=cfg.ray_address or None,
            log=lambda line: print(line, file=sys.stderr, flush=True),
            **collector_kwargs,
        )
    except CollectorError as err:
        raise TrainError(str(err)) from None


# -- Ape-X: off-policy actors that stream into the learner's replay buffer ---------------------
@dataclasses.dataclass
class ApexConfig(RemoteConfig):
    """:class:`RemoteConfig` plus how often an off-policy learner refreshes its actors.

    Examples:
        >>> ApexConfig(workers=2, sync_every=0).validate_remote()
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: --sync-every must be > 0, got 0
    """

    workers: int = option(
        0,
        "act on this many Ray workers streaming transitions into the replay buffer, each with "
        "--num-envs envs and its own epsilon (N >= 2: Ape-X's 0.4 ** (1 + 7 i / (N - 1)); "
        "N = 1: the annealed --eps-init/--eps-end); 0: in this process. Resuming such a run is "
        "not bit-exact (the workers act while the learner trains)",
    )
    sync_every: int = option(
        128, "with --workers: push the Q-network to the workers every N gradient steps"
    )

    def validate_remote(self) -> None:
        if self.sync_every <= 0:
            raise TrainError(f"--sync-every must be > 0, got {self.sync_every}")
        super().validate_remote()


def apex_epsilons(num_workers: int, base: float = 0.4, alpha: float = 7.0) -> list[float]:
    """Ape-X's per-actor epsilons ``base ** (1 + alpha * i / (N - 1))`` (N >= 2).

    Examples:
        >>> [round(e, 4) for e in apex_epsilons(3)]
        [0.4, 0.0162, 0.0007]
    """
    if num_workers < 2:
        raise ValueError(f"Ape-X epsilons need >= 2 workers, got {num_workers}")
    return [base ** (1 + alpha * i / (num_workers - 1)) for i in range(num_workers)]


def _apex_explorer(epsilons: Sequence[float], num_actions: int, index: int, qnet: Any) -> Any:
    """Worker ``index``'s actor: its Q-network copy, then epsilon-greedy at a fixed epsilon."""
    from tdrl.data import Categorical
    from tdrl.modules import EGreedyModule, SafeSequential

    eps = epsilons[index]
    egreedy = EGreedyModule(
        Categorical(num_actions), eps_init=eps, eps_end=eps, action_key="action"
    )
    return SafeSequential(qnet, egreedy)


def open_apex_collector(
    cfg: Any, qnet: Any, explorer: Any, num_actions: int
) -> RayCollector | None:
    """``None`` without ``--workers``, else Ape-X actors for an off-policy learner.

    With ``N >= 2`` workers, worker ``i`` acts epsilon-greedily around its
    copy of ``qnet`` with :func:`apex_epsilons` ``[i]``; a single worker gets
    a copy of the learner's own ``explorer`` (Q-network + the recipe's
    annealed epsilon, refreshed with the weights). Each batch is
    ``[T, workers * num_envs]`` with ``T = ceil(train_freq / (workers * num_envs))``
    (about one training phase of env steps); one batch is always in flight, so
    the workers act while the learner trains.
    """
    if not cfg.workers:
        return None
    total = cfg.num_envs * cfg.workers
    steps = -(-cfg.train_freq // total)
    if cfg.workers == 1:
        return open_collector(cfg, explorer, steps, policy_keys=["action"], prefetch=True)
    wrapper = functools.partial(_apex_explorer, apex_epsilons(cfg.workers), num_actions)
    return open_collector(
        cfg, qnet, steps, policy_keys=["action"], policy_wrapper=wrapper, prefetch=True
    )
