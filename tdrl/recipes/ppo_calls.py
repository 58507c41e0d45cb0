"""How PPO calls its agent: through the TensorDict operator, or as plain tensor functions.

PPO needs three things of its agent, and asks :func:`agent_calls` once which
way to get them:

- ``act(obs)``: one rollout step (sampled action, its log-probability, the
  state value, and whatever the memory stores), as a mapping of entries;
- ``value(obs, rows=None)``: state values (the bootstrap of a truncated
  episode and the rollout's last value);
- ``score(flat, idx, obs, action)``: the minibatch's new log-probabilities, an
  entropy function and the values, for the update.

:class:`OperatorCalls` goes through the modules and works for every agent
(user modules, continuous heads, normalized observations, recurrent trunks via
:mod:`tdrl.recipes.memory`). :class:`TensorCalls` serves the recipe's own
feed-forward categorical agent: the trunk and heads run as plain ``F.linear``
chains (:func:`tdrl.recipes.fastpath.plain_forward`) on the operator's own
parameters, with the very ops of the operator's
:class:`~tdrl.modules.distributions.IndexCategorical` (log-probabilities ``log_softmax`` +
``gather``, the draw ``multinomial`` on their softmax), so a seeded run is bit for bit the
operator path's (``tests/test_fastpath.py``).

Examples:
    >>> import gymnasium as gym
    >>> from tdrl.recipes.memory import make_memory
    >>> from tdrl.recipes.ppo import PPOConfig, build_agent
    >>> spaces = gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2)
    >>> parts = build_agent(PPOConfig(), *spaces)
    >>> calls = agent_calls(PPOConfig(), parts, make_memory(parts.agent), spaces[1])
    >>> type(calls).__name__, sorted(calls.act(torch.zeros(3, 4)).keys())
    ('TensorCalls', ['action', 'observation', 'sample_log_prob', 'state_value'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from tensordict import TensorDictBase

from tdrl.recipes.envs import is_discrete
from tdrl.recipes.fastpath import plain_forward
from tdrl.recipes.memory import NoMemory

__all__ = ["OperatorCalls", "TensorCalls", "agent_calls", "entropy"]

Score = tuple[torch.Tensor, Callable[[], torch.Tensor], torch.Tensor]


def agent_calls(cfg: Any, parts: Any, memory: Any, action_space: Any) -> OperatorCalls | TensorCalls:
    """:class:`TensorCalls` for the recipe's own feed-forward categorical agent, else
    :class:`OperatorCalls`.

    Examples:
        >>> import gymnasium as gym
        >>> from tdrl.recipes.memory import make_memory
        >>> from tdrl.recipes.ppo import PPOConfig, build_agent
        >>> cfg = PPOConfig(discrete_dist="onehot")
        >>> parts = build_agent(cfg, gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
        >>> type(agent_calls(cfg, parts, make_memory(parts.agent), gym.spaces.Discrete(2))).__name__
        'OperatorCalls'
    """
    operator = OperatorCalls(parts, memory)
    if (getattr(cfg, "module", "") or not is_discrete(action_space)
            or cfg.discrete_dist != "categorical" or type(memory) is not NoMemory):
        return operator
    try:
        nets = (parts.trunk.module, parts.policy.module[0].module, parts.value.module)
    except (AttributeError, IndexError, TypeError):
        return operator
    fns = [plain_forward(net) for net in nets]
    if any(fn is None for fn in fns):
        return operator
    return TensorCalls(parts, *fns)


def entropy(dist: Any) -> torch.Tensor:
    """Exact entropy when the distribution has one, else a one-sample estimate."""
    try:
        return dist.entropy()
    except NotImplementedError:
        sample = dist.rsample() if dist.has_rsample else dist.sample()
        return -dist.log_prob(sample)


class OperatorCalls:
    """The agent through its modules: the operator for a step, trunk + heads for a minibatch."""

    def __init__(self, parts: Any, memory: Any) -> None:
        self.agent, self.trunk, self.policy, self.value_head = (
            parts.agent, parts.trunk, parts.policy, parts.value)
        self.value_operator = parts.agent.get_value_operator()
        self.obs_key = parts.obs_key
        self.memory = memory

    def act(self, obs: torch.Tensor) -> Mapping[str, torch.Tensor]:
        """The whole operator once: trunk, sampled action + log-prob, state value."""
        return self.agent(self.memory.inputs(obs))

    def value(self, obs: torch.Tensor, rows: Any = None) -> torch.Tensor:
        """State values of ``obs`` (``rows``: the envs whose state continues into them)."""
        return self.value_operator(self.memory.inputs(obs, rows=rows))["state_value"]

    def score(self, flat: TensorDictBase, idx: torch.Tensor | None, obs: torch.Tensor,
              action: torch.Tensor) -> Score:
        td = self.trunk(self.memory.replay(flat, idx, self.obs_key, obs))
        dist = self.policy.get_dist(td)  # the operator's own distribution
        return dist.log_prob(action), partial(entropy, dist), self.value_head(td)["state_value"]


class TensorCalls:
    """The recipe's own categorical agent as tensor functions over the operator's parameters.

    With observation normalization the rollout normalizes with the module's own
    ``normalize`` (same statistics, same clipping) and stores what the trunk read.
    """

    def __init__(self, parts: Any, trunk: Callable, logits: Callable, value: Callable) -> None:
        self.trunk, self.logits, self.value_fn = trunk, logits, value
        self.obs_key = parts.obs_key
        self.log_prob_key = getattr(parts.policy, "log_prob_key", "sample_log_prob")
        norm = parts.obs_norm
        self.norm = None if norm is None else norm.normalize

    def _input(self, obs: torch.Tensor) -> torch.Tensor:
        return obs if self.norm is None else self.norm(obs)

    def act(self, obs: torch.Tensor) -> Mapping[str, torch.Tensor]:
        x = self._input(obs)
        hidden = self.trunk(x)
        logp = _normalized(self.logits(hidden))
        action = torch.multinomial(torch.softmax(logp, -1), 1, True)  # IndexCategorical.sample
        return {self.obs_key: x, "action": action.squeeze(-1),
                self.log_prob_key: logp.gather(-1, action).squeeze(-1),
                "state_value": self.value_fn(hidden)}

    def value(self, obs: torch.Tensor, rows: Any = None) -> torch.Tensor:
        return self.value_fn(self.trunk(self._input(obs)))

    def score(self, flat: TensorDictBase, idx: torch.Tensor | None, obs: torch.Tensor,
              action: torch.Tensor) -> Score:
        hidden = self.trunk(obs)
        logp = _normalized(self.logits(hidden))
        log_prob = logp.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        return log_prob, partial(_categorical_entropy, logp), self.value_fn(hidden)


def _normalized(logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities from logits as ``IndexCategorical`` normalizes them (bit for bit)."""
    return logits.log_softmax(-1)


def _categorical_entropy(logp: torch.Tensor) -> torch.Tensor:
    """``Categorical.entropy`` from normalized logits (``-inf`` entries contribute 0)."""
    clamped = logp.clamp(min=torch.finfo(logp.dtype).min)
    return -(clamped * torch.softmax(logp, -1)).sum(-1)
