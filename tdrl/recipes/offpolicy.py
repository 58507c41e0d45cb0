"""What the off-policy recipes (DQN, SAC) share: replay checks, envs, counters and the checkpoint.

:class:`OffPolicy` is the base of both algorithms. It holds the run's
plumbing (vector envs and the current observation, the replay buffer, episode
statistics, the step / update counters) and turns it into one checkpoint
``state_dict`` with the same keys for every off-policy recipe; each algorithm
names its own networks, optimizers and tensors in :meth:`OffPolicy.checkpointed`.
:func:`check_offpolicy` validates the replay flags both configs carry.

Examples:
    >>> from tdrl.recipes.config import CommonConfig
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Cfg(CommonConfig):
    ...     lr: float = 1e-3; gamma: float = 0.99; tau: float = 0.005; buffer_size: int = 100
    ...     batch_size: int = 8; learning_starts: int = 0; train_freq: int = 1
    ...     gradient_steps: int = 1; log_every: int = 10
    >>> check_offpolicy(Cfg(buffer_size=4, num_envs=8))
    Traceback (most recent call last):
    ...
    tdrl.recipes.config.TrainError: --buffer-size 4 must be >= num_envs = 8
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tdrl.recipes.blocks import Clock, EpisodeStats, obs_tensor
from tdrl.recipes.config import TrainError, check_positive, check_range
from tdrl.recipes.envpool_vec import restart_obs
from tdrl.recipes.envs import check_env_reset, make_vec_env
from tdrl.recipes.pixels import reports_game_score
from tdrl.recipes.replay import ReplayBuffer

__all__ = ["OffPolicy", "check_offpolicy"]


def check_offpolicy(cfg: Any, per_step: str = "num_envs") -> None:
    """Check the flags every off-policy config has (raises ``TrainError``).

    ``per_step``: the product of config fields giving how many transitions one
    vector step can add at once (the buffer must hold them).
    """
    check_positive(
        cfg, ["lr", "buffer_size", "batch_size", "train_freq", "gradient_steps", "log_every"]
    )
    check_range(cfg, ["gamma"], 0.0, 1.0)
    if not 0.0 < cfg.tau <= 1.0:
        raise TrainError(f"--tau must be in (0, 1], got {cfg.tau}")
    if cfg.learning_starts < 0:
        raise TrainError(f"--learning-starts must be >= 0, got {cfg.learning_starts}")
    need = int(np.prod([getattr(cfg, name) for name in per_step.split(" * ")]))
    if cfg.buffer_size < need:
        raise TrainError(f"--buffer-size {cfg.buffer_size} must be >= {per_step} = {need}")


def _save(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    return obj.state_dict()


def _load(obj: Any, value: Any) -> None:
    if isinstance(obj, torch.Tensor):
        with torch.no_grad():
            obj.copy_(value)
    else:
        obj.load_state_dict(value)


class OffPolicy:
    """Base of the off-policy algorithms: envs, replay, stats, counters, checkpoint.

    Subclasses call ``super().__init__`` first, build their networks, then
    :meth:`open_envs`; they return their stateful parts (modules, optimizers,
    tensors, anything with ``state_dict``) from :meth:`checkpointed`, by
    checkpoint key.

    Examples:
        >>> from tdrl.recipes.config import CommonConfig
        >>> class Toy(OffPolicy):
        ...     def checkpointed(self):
        ...         return {"model": self.net}
        >>> cfg = CommonConfig(env="Pendulum-v1", num_envs=1)
        >>> cfg.buffer_size = 10
        >>> toy = Toy(cfg, threshold=None)
        >>> toy.net = torch.nn.Linear(3, 1)
        >>> toy.open_envs()
        >>> sorted(toy.state_dict())[:4], toy.obs.shape
        (['buffer', 'envs', 'global_step', 'model'], torch.Size([1, 3]))
        >>> toy.close()
    """

    def __init__(self, cfg: Any, threshold: float | None, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock = clock if clock is not None else Clock()
        self.device = torch.device(cfg.device)
        self.buffer = ReplayBuffer(cfg.buffer_size, self.device)
        # Atari: the statistics are whole games' unclipped scores (final_info), not lives (with
        # --workers the infos stay with the workers: lives and clipped rewards)
        self.stats = EpisodeStats(cfg.num_envs, threshold, game_score=reports_game_score(cfg.env)
                                  and not getattr(cfg, "workers", 0))
        self.global_step = 0
        self.updates = 0
        self.since_train = 0

    def open_envs(self) -> None:
        """Create the vector env and reset it with the run's seed."""
        self.envs = make_vec_env(self.cfg.env, self.cfg.num_envs,
                                 vec=getattr(self.cfg, "vec", "sync"))
        obs, _ = self.envs.reset(seed=self.cfg.seed)
        check_env_reset(obs)
        self.obs = self._obs_tensor(obs)

    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return obs_tensor(obs, self.device)  # uint8 frames stay uint8 (the network scales them)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions for evaluation."""
        return self._act(obs)

    def checkpointed(self) -> dict[str, Any]:
        """The algorithm's own stateful parts, by checkpoint key."""
        raise NotImplementedError

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {key: _save(obj) for key, obj in self.checkpointed().items()}
        state.update(
            buffer=self.buffer.state_dict(),
            envs=self.envs,  # pickled with the checkpoint: resuming continues the episodes
            obs=self.obs.cpu(),
            stats=self.stats.state_dict(),
            global_step=self.global_step,
            updates=self.updates,
            since_train=self.since_train,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, obj in self.checkpointed().items():
            _load(obj, state[key])
        self.buffer.load_state_dict(state["buffer"])
        if self.envs is not None:  # None: the algorithm's envs live elsewhere (remote workers)
            self.envs.close()
        self.envs = state["envs"]
        self.obs = state["obs"].to(self.device)
        fresh = restart_obs(self.envs)
        self.envs_restarted = fresh is not None
        if fresh is not None:  # --vec envpool: new games (envpool cannot save its emulators)
            self.obs = self._obs_tensor(fresh)
        self.stats.load_state_dict(state["stats"])
        self.global_step = int(state["global_step"])
        self.updates = int(state["updates"])
        self.since_train = int(state["since_train"])

    def close(self) -> None:
        self.envs.close()
