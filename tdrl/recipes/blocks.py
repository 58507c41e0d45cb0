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
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from tdrl.data import Bounded
from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import ProbabilisticActor, SafeModule, TanhNormal

__all__ = [
    "Clock",
    "EpisodeStats",
    "box_to_env",
    "deterministic_act",
    "linear_schedule",
    "load_policy_operator",
    "make_adam",
    "tanh_normal_actor",
]


class EpisodeStats:
    """Running returns per sub-env, the last ``window`` finished episodes, and "solved".

    A run is solved at the first step where the mean return of the last
    ``window`` (10) finished episodes reaches ``threshold`` (the env's
    ``reward_threshold``); ``solved_at_step``/``solved_at_s`` stay ``None``
    otherwise or when the env has no threshold.

    Examples:
        >>> stats = EpisodeStats(num_envs=1, threshold=1.0, window=1)
        >>> stats.update(np.array([1.0]), np.array([True]), step=1, wall_s=0.5)
        >>> stats.solved_at_step, stats.solved_at_s, stats.summary()["return_mean"]
        (1, 0.5, 1.0)
    """

    def __init__(self, num_envs: int, threshold: float | None, window: int = 10) -> None:
        self.threshold = threshold
        self.window = window
        self.running_return = np.zeros(num_envs, dtype=np.float64)
        self.running_length = np.zeros(num_envs, dtype=np.int64)
        self.recent: deque[float] = deque(maxlen=window)
        self.recent_length: deque[int] = deque(maxlen=window)
        self.episodes = 0
        self.solved_at_step: int | None = None
        self.solved_at_s: float | None = None

    def update(self, reward: np.ndarray, done: np.ndarray, step: int, wall_s: float) -> None:
        """Add one vector step of rewards; ``done`` = terminated | truncated."""
        self.running_return += reward
        self.running_length += 1
        if not done.any():
            return
        for i in np.flatnonzero(done):  # episodes ending together count in env order
            self.recent.append(float(self.running_return[i]))
            self.recent_length.append(int(self.running_length[i]))
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
            "episodes": self.episodes,
            "solved_at_step": self.solved_at_step,
            "solved_at_s": self.solved_at_s,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.running_return = np.asarray(state["running_return"], dtype=np.float64).copy()
        self.running_length = np.asarray(state["running_length"], dtype=np.int64).copy()
        self.recent = deque(state["recent"], maxlen=self.window)
        self.recent_length = deque(state["recent_length"], maxlen=self.window)
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


def make_adam(
    params: Iterable[torch.nn.Parameter], lr: float, eps: float = 1e-8
) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one for the device (same math, fewer ops).

    Examples:
        >>> opt = make_adam(torch.nn.Linear(2, 2).parameters(), 1e-3)
        >>> opt.param_groups[0]["lr"]
        0.001
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/dtype
        return torch.optim.Adam(params, lr=lr, eps=eps)


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


def deterministic_act(
    policy: Any, device: Any, to_env: Callable[[torch.Tensor], np.ndarray] | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """``obs batch (numpy) -> env actions``: ``policy`` under DETERMINISTIC exploration.

    ``policy`` reads ``observation`` and writes ``action`` (no gradients);
    ``to_env`` turns that tensor into the env's format (default: as is, on the CPU).

    Examples:
        >>> from tdrl.modules import QValueActor
        >>> qnet = QValueActor(torch.nn.Linear(4, 2), in_keys=["observation"],
        ...                    action_space="categorical")
        >>> deterministic_act(qnet, "cpu")(np.zeros((3, 4), dtype=np.float32)).shape
        (3,)
    """
    convert = to_env or (lambda a: a.cpu().numpy())

    def act(obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
        td = TensorDict({"observation": obs_t}, batch_size=obs_t.shape[:1], device=device)
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            return convert(policy(td)["action"])

    return act


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
