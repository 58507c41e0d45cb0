"""n-step returns: per-env streams of one-step transitions turned into n-step ones, for replay.

DQN (:mod:`tdrl.recipes.dqn`) pushes every vector step through
:class:`NStepReturns` before its replay buffer, so that a stored transition's
target is ``reward + discount * Q(next_observation)`` with the n-step reward
and ``discount = gamma ** m``.

Examples:
    >>> ns = NStepReturns(n=3, gamma=0.9, num_envs=2)
    >>> o = np.zeros((2, 1), dtype=np.float32)
    >>> ns.push(o, np.array([0, 1]), np.array([1.0, 1.0]), o, np.array([False, False]),
    ...         np.array([False, False]))
    []
    >>> [len(steps) for steps in ns.pending]  # waiting for two more steps each
    [1, 1]
"""

from __future__ import annotations

import numpy as np

__all__ = ["NStepReturns"]


class NStepReturns:
    """Turns per-env streams of one-step transitions into n-step ones.

    Each emitted transition carries ``reward`` = sum of the next ``m <= n``
    discounted rewards, the observation ``m`` steps later, whether the episode
    *terminated* in between, and ``discount`` = ``gamma ** m`` for the
    bootstrap. An ending episode (terminated or truncated) flushes its pending
    steps with shorter horizons; a truncated one still bootstraps from its
    final observation.

    Examples:
        >>> ns = NStepReturns(n=2, gamma=0.5, num_envs=1)
        >>> o = np.zeros((1, 1), dtype=np.float32)
        >>> ns.push(o, np.array([0]), np.array([1.0]), o + 1, np.array([False]), np.array([False]))
        []
        >>> out = ns.push(o + 1, np.array([1]), np.array([2.0]), o + 2, np.array([True]),
        ...               np.array([True]))
        >>> [(t[2], t[4], t[5]) for t in out]  # (return, terminated, discount)
        [(2.0, True, 0.25), (2.0, True, 0.5)]
    """

    def __init__(self, n: int, gamma: float, num_envs: int) -> None:
        self.n, self.gamma = n, gamma
        self.pending: list[list[tuple[np.ndarray, int, float]]] = [[] for _ in range(num_envs)]

    def _emit(self, steps: list, next_obs: np.ndarray, terminated: bool) -> tuple:
        ret = 0.0
        for k, (_, _, r) in enumerate(steps):
            ret += (self.gamma**k) * r
        obs, action, _ = steps[0]
        return (obs, action, ret, next_obs, terminated, self.gamma ** len(steps))

    def push(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        done: np.ndarray,
    ) -> list[tuple]:
        """Add one vector step; returns the transitions that are now complete."""
        out = []
        for i, steps in enumerate(self.pending):
            steps.append((obs[i], int(action[i]), float(reward[i])))
            if done[i]:
                while steps:
                    out.append(self._emit(steps, next_obs[i], bool(terminated[i])))
                    steps.pop(0)
            elif len(steps) == self.n:
                out.append(self._emit(steps, next_obs[i], False))
                steps.pop(0)
        return out

