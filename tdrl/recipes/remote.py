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

from tdrl.collectors import CollectorError, RayCollector
from tdrl.collectors.distributed import import_ray
from tdrl.recipes.config import RunFailure, TrainError, option
from tdrl.recipes.envs import make_vec_env

__all__ = ["RemoteConfig", "WorkerFailure", "open_collector"]


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
        if self.workers < 0:
            raise TrainError(f"--workers must be >= 0, got {self.workers}")
        if self.ray_address and not self.workers:
            raise TrainError("--ray-address needs --workers N (N >= 1)")
        if self.workers:
            try:
                import_ray()  # before anything is written
            except CollectorError as err:
                raise TrainError(str(err)) from None

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


def open_collector(
    cfg: Any,
    policy: Any,
    steps_per_batch: int,
    *,
    policy_keys: Sequence[str] | None = None,
    action_to_env: Callable | None = None,
) -> RayCollector | None:
    """``None`` without ``--workers``, else a Ray collector over ``cfg.workers`` workers.

    Worker failures are logged to stderr; bad setups (Ray missing, too few
    CPUs) raise :class:`~tdrl.recipes.config.TrainError`.
    """
    if not cfg.workers:
        return None
    try:
        return RayCollector(
            functools.partial(make_vec_env, cfg.env, cfg.num_envs),
            policy,
            steps_per_batch,
            num_workers=cfg.workers,
            policy_keys=policy_keys,
            action_to_env=action_to_env,
            seed=cfg.seed,
            ray_address=cfg.ray_address or None,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except CollectorError as err:
        raise TrainError(str(err)) from None
