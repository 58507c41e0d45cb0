"""Building blocks the algorithm files share: episode stats, the run clock, Adam, schedules,
actors, and the deterministic policy used for evaluation.

Examples:
    >>> import numpy as np
    >>> stats = EpisodeStats(num_envs=2, threshold=2.0, window=2)
    >>> stats.update(np.array([1.0, 1.0]), np.array([False, True]), step=2, wall_s=0.1)
    >>> stats.update(np.array([1.0, 1.0]), np.array([True, True]), step=4, wall_s=0.2)
    >>> stats.episodes, list(stats.recent), stats.solved_at_step
    (3, [2.0, 1.0], None)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from tdrl.data import Bounded
from tdrl.modules import ProbabilisticActor, SafeModule, TanhNormal
from tdrl.recipes.memory import PolicyAct
from tdrl.recipes.optim import make_adam  # (re-exported: the recipes import it from here)

__all__ = [
    "Clock",
    "EpisodeStats",
    "box_to_env",
    "deterministic_act",
    "linear_schedule",
    "load_policy_operator",
    "make_adam",
    "obs_tensor",
    "tanh_normal_actor",
]


class EpisodeStats:
    """Running returns per sub-env, the last ``window`` finished episodes, and "solved".

    A run is solved at the first step where the mean return of the last
    ``window`` (10) finished episodes reaches ``threshold`` (the env's
    ``reward_threshold``); ``solved_at_step``/``solved_at_s`` stay ``None``
    otherwise or when the env has no threshold. ``last(100)`` is the mean of up
    to the last ``LONG_WINDOW`` (100) episodes.

    With ``game_score=True`` (Atari, whose training episodes end at each lost
    life and see clipped rewards) an episode counts only when the vector env's
    ``info["final_info"]`` reports the whole game's ``episode_score`` (and
    ``episode_steps``): the statistics are the unclipped game scores.

    Examples:
        >>> stats = EpisodeStats(num_envs=1, threshold=1.0, window=1)
        >>> stats.update(np.array([1.0]), np.array([True]), step=1, wall_s=0.5)
        >>> stats.solved_at_step, stats.solved_at_s, stats.summary()["return_mean"]
        (1, 0.5, 1.0)
        >>> game = EpisodeStats(num_envs=2, threshold=None, game_score=True)
        >>> info = {"final_info": {"episode_score": np.array([0.0, 7.0]),
        ...                        "_episode_score": np.array([False, True]),
        ...                        "episode_steps": np.array([0, 90])}}
        >>> game.update(np.ones(2), np.array([True, True]), step=2, wall_s=0.1, info=info)
        >>> game.episodes, list(game.recent), list(game.recent_length)
        (1, [7.0], [90])
    """

    LONG_WINDOW = 100

    def __init__(
        self, num_envs: int, threshold: float | None, window: int = 10, game_score: bool = False
    ) -> None:
        self.threshold = threshold
        self.window = window
        self.game_score = game_score
        self.recent_long: deque[float] = deque(maxlen=self.LONG_WINDOW)
        self.running_return = np.zeros(num_envs, dtype=np.float64)
        self.running_length = np.zeros(num_envs, dtype=np.int64)
        self.recent: deque[float] = deque(maxlen=window)
        self.recent_length: deque[int] = deque(maxlen=window)
        self.episodes = 0
        self.solved_at_step: int | None = None
        self.solved_at_s: float | None = None

    def update(
        self, reward: np.ndarray, done: np.ndarray, step: int, wall_s: float,
        info: dict | None = None,
    ) -> None:
        """Add one vector step of rewards; ``done`` = terminated | truncated.

        ``info``: the vector env's info of this step (read for game scores).
        """
        self.running_return += reward
        self.running_length += 1
        if not done.any():
            return
        if self.game_score:
            final = (info or {}).get("final_info", {})
            scored = np.asarray(final.get("_episode_score", np.zeros(len(done), bool)))
            ended = np.flatnonzero(done & scored)
            returns = np.asarray(final.get("episode_score", np.zeros(len(done))), np.float64)
            lengths = np.asarray(final.get("episode_steps", self.running_length), np.int64)
        else:
            ended, returns, lengths = np.flatnonzero(done), self.running_return, self.running_length
        for i in ended:  # episodes ending together count in env order
            self.recent.append(float(returns[i]))
            self.recent_long.append(float(returns[i]))
            self.recent_length.append(int(lengths[i]))
            self.episodes += 1
            if (
                self.solved_at_step is None
                and self.threshold is not None
                and len(self.recent) == self.window
                and float(np.mean(self.recent)) >= self.threshold
            ):
                self.solved_at_step = int(step)
                self.solved_at_s = float(wall_s)
        self.running_return[done] = 0.0
        self.running_length[done] = 0

    def last(self, n: int = LONG_WINDOW) -> float:
        """Mean return of the last ``n`` (<= ``LONG_WINDOW``) finished episodes (NaN before any)."""
        if not self.recent_long:
            return float("nan")
        return float(np.mean(list(self.recent_long)[-n:]))

    def summary(self) -> dict[str, float]:
        """Stats of the last ``window`` finished episodes (NaN before the first one)."""
        if not self.recent:
            nan = float("nan")
            return {"return_mean": nan, "return_std": nan, "length_mean": nan}
        r = np.asarray(self.recent)
        return {
            "return_mean": float(r.mean()),
            "return_std": float(r.std()),
            "length_mean": float(np.mean(self.recent_length)),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "running_return": self.running_return.copy(),
            "running_length": self.running_length.copy(),
            "recent": list(self.recent),
            "recent_length": list(self.recent_length),
            "recent_long": list(self.recent_long),
            "episodes": self.episodes,
            "solved_at_step": self.solved_at_step,
            "solved_at_s": self.solved_at_s,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.running_return = np.asarray(state["running_return"], dtype=np.float64).copy()
        self.running_length = np.asarray(state["running_length"], dtype=np.int64).copy()
        self.recent = deque(state["recent"], maxlen=self.window)
        self.recent_length = deque(state["recent_length"], maxlen=self.window)
        self.recent_long = deque(state.get("recent_long", state["recent"]), maxlen=self.LONG_WINDOW)
        self.episodes = int(state["episodes"])
        self.solved_at_step = state["solved_at_step"]
        self.solved_at_s = state["solved_at_s"]


class Clock:
    """Training wall time that accumulates across resumes.

    Examples:
        >>> clock = Clock(offset=10.0)
        >>> clock() >= 10.0
        True
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return self.offset + (time.perf_counter() - self.start)


def linear_schedule(initial: float, step: int, total: int) -> float:
    """``initial`` decayed linearly to 0 at ``total`` steps (SB3's ``lin_`` schedules).

    Examples:
        >>> linear_schedule(1e-3, 250, 1000)
        0.00075
    """
    return initial * max(0.0, 1.0 - step / total)


def tanh_normal_actor(net: torch.nn.Module, in_key: str, action_space: Any) -> ProbabilisticActor:
    """A ``ProbabilisticActor``: ``net(in_key) -> loc, scale``, a ``TanhNormal`` on the box's bounds.

    It writes ``action`` and its log-probability (``return_log_prob=True``).

    Examples:
        >>> import gymnasium as gym
        >>> from tensordict import TensorDict
        >>> from tdrl.modules import NormalParamExtractor
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), NormalParamExtractor())
        >>> actor = tanh_normal_actor(net, "observation", gym.spaces.Box(-2, 2, (1,)))
        >>> td = actor(TensorDict(observation=torch.zeros(4, 3), batch_size=[4]))
        >>> td["action"].shape, bool(td["action"].abs().max() <= 2)
        (torch.Size([4, 1]), True)
    """
    low = torch.as_tensor(action_space.low, dtype=torch.float32)
    high = torch.as_tensor(action_space.high, dtype=torch.float32)
    return ProbabilisticActor(
        SafeModule(net, in_keys=[in_key], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        out_keys=["action"],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": low, "high": high},
        return_log_prob=True,
        spec=Bounded(low, high, shape=low.shape),
    )


def box_to_env(action_space: Any) -> Callable[[torch.Tensor], np.ndarray]:
    """``action tensor [B, ...] -> numpy [B, *box shape]`` for a Box action space.

    Examples:
        >>> import gymnasium as gym
        >>> box_to_env(gym.spaces.Box(-1, 1, (2,)))(torch.zeros(3, 2)).shape
        (3, 2)
    """
    shape = action_space.shape
    return lambda a: a.cpu().numpy().reshape(a.shape[0], *shape)


def obs_tensor(obs: Any, device: Any = "cpu") -> torch.Tensor:
    """Observations as a tensor on ``device``: ``uint8`` frames stay ``uint8``, the rest float32.

    Image networks scale their ``uint8`` input themselves (``ScaleFrames``), so
    rollouts, replay buffers and exported policies keep frames at one byte a pixel.

    Examples:
        >>> obs_tensor(np.zeros((2, 4, 10, 10), dtype=np.uint8)).dtype
        torch.uint8
        >>> obs_tensor(np.zeros((2, 3))).dtype
        torch.float32
    """
    t = torch.as_tensor(obs)
    return t.to(device=device, dtype=torch.float32 if t.dtype != torch.uint8 else torch.uint8)


def deterministic_act(
    policy: Any, device: Any, to_env: Callable[[torch.Tensor], np.ndarray] | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """``obs batch (numpy) -> env actions``: ``policy`` under DETERMINISTIC exploration.

    ``policy`` reads ``observation`` and writes ``action`` (no gradients);
    ``to_env`` turns that tensor into the env's format (default: as is, on the CPU).
    A :class:`~tdrl.recipes.memory.PolicyAct` (it carries a recurrent policy's state).

    Examples:
        >>> from tdrl.modules import QValueActor
        >>> qnet = QValueActor(torch.nn.Linear(4, 2), in_keys=["observation"],
        ...                    action_space="categorical")
        >>> deterministic_act(qnet, "cpu")(np.zeros((3, 4), dtype=np.float32)).shape
        (3,)
    """
    return PolicyAct(policy, device, to_env or _cpu_numpy)


def _cpu_numpy(action: torch.Tensor) -> np.ndarray:
    return action.cpu().numpy()


def load_policy_operator(agent: Any, model_state: Any, device: Any) -> Any:
    """``agent`` (an actor-critic operator) with ``model_state`` loaded, on ``device``, in eval
    mode; returns its ``get_policy_operator()`` (what evaluation and export run).

    Examples:
        >>> import gymnasium as gym
        >>> from tdrl.modules import ActorCriticWrapper, NormalParamExtractor, ValueOperator
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), NormalParamExtractor())
        >>> actor = tanh_normal_actor(net, "observation", gym.spaces.Box(-1, 1, (1,)))
        >>> agent = ActorCriticWrapper(actor, ValueOperator(torch.nn.Linear(3, 1),
        ...                                                 in_keys=["observation"]))
        >>> policy = load_policy_operator(agent, agent.state_dict(), "cpu")
        >>> policy.training
        False
    """
    agent.load_state_dict(model_state)
    agent.to(device).eval()
    return agent.get_policy_operator()
