"""PPO's networks: the shared-trunk ``ActorValueOperator`` and the deterministic policy built from it.

``build_agent`` reads the network fields of a ``PPOConfig`` (``hidden``,
``head_hidden``, ``activation``, ``discrete_dist``, ``state_dependent_std``,
``log_std_init``, ``normalize_obs``, ``recurrent``, ``rnn_hidden``); :mod:`tdrl.recipes.ppo` holds the
algorithm.

Examples:
    >>> import gymnasium as gym
    >>> from tdrl.recipes.ppo import PPOConfig
    >>> parts = build_agent(PPOConfig(), gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    >>> type(parts.agent).__name__
    'ActorValueOperator'
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from tdrl.data import Categorical, OneHot
from tdrl.modules import (
    MLP,
    ActorCriticWrapper,
    ActorValueOperator,
    NormalParamExtractor,
    OneHotCategorical,
    ProbabilisticActor,
    RunningObsNorm,
    SafeModule,
    SafeSequential,
    ValueOperator,
)
from tdrl.modules.distributions import IndexCategorical
from tdrl.recipes.blocks import (
    box_to_env,
    load_policy_operator,
    obs_tensor,
    tanh_normal_actor,
)
from tdrl.recipes.config import TrainError
from tdrl.recipes.envs import ActFn, EnvInfo, is_discrete
from tdrl.recipes.memory import PolicyAct, make_memory
from tdrl.recipes.trunks import ACTIVATIONS, build_trunk, trunk_module
from tdrl.recipes.user_module import build_user_module

__all__ = ["AgentParts", "action_to_env", "build_agent", "check_agent", "make_act", "make_policy",
           "prepare"]


class _LocAndParamScale(nn.Module):
    """``hidden -> [loc, log_std]`` with ``log_std`` a learned, state-independent parameter."""

    def __init__(self, loc: nn.Module, act_dim: int, log_std_init: float) -> None:
        super().__init__()
        self.loc = loc
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        loc = self.loc(hidden)
        return torch.cat([loc, self.log_std.expand_as(loc)], dim=-1)


class AgentParts(NamedTuple):
    """The operator and its parts (the same objects the operator holds)."""

    agent: Any  # ActorValueOperator
    common: Any  # observation -> hidden: [obs_norm,] trunk
    policy: Any  # ProbabilisticActor: hidden -> action (+ sample_log_prob)
    value: Any  # ValueOperator: hidden -> state_value
    trunk: Any  # obs_key [+ recurrent state, is_init] -> hidden (trunks.trunk_module)
    obs_norm: Any  # RunningObsNorm (observation -> observation_norm) or None

    @property
    def obs_key(self) -> str:
        """The key the trunk reads: ``"observation_norm"`` with ``obs_norm``, else ``"observation"``."""
        return self.trunk.in_keys[0]


def _orthogonal_init(module: nn.Module, gain: float, last_gain: float | None = None) -> None:
    linears = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for i, m in enumerate(linears):
        g = last_gain if (last_gain is not None and i == len(linears) - 1) else gain
        nn.init.orthogonal_(m.weight, g)
        nn.init.zeros_(m.bias)


def build_agent(cfg: Any, obs_space: Any, action_space: Any) -> AgentParts:
    """Shared-trunk ``ActorValueOperator`` for ``obs_space`` / ``action_space``.

    Orthogonal init as in SB3/CleanRL: gain sqrt(2) in the trunk, 0.01 on the
    policy output, 1 on the value output. With ``cfg.normalize_obs`` a
    :class:`~tdrl.modules.RunningObsNorm` runs before the trunk (so the policy
    operator, ``tdrl eval`` and ``tdrl export`` normalise with the saved statistics).

    Examples:
        >>> import gymnasium as gym
        >>> from tensordict import TensorDict
        >>> from tdrl.recipes.ppo import PPOConfig
        >>> parts = build_agent(PPOConfig(), gym.spaces.Box(-1, 1, (3,)),
        ...                     gym.spaces.Box(-2.0, 2.0, (2,)))
        >>> td = parts.agent(TensorDict(observation=torch.zeros(5, 3), batch_size=[5]))
        >>> td["action"].shape, td["state_value"].shape
        (torch.Size([5, 2]), torch.Size([5, 1]))
    """
    if getattr(cfg, "module", ""):
        return user_agent_parts(build_user_module(cfg.module, obs_space, action_space))
    body = build_trunk(obs_space, hidden=cfg.hidden, activation=cfg.activation,
                       cnn=getattr(cfg, "cnn", "auto"))
    head_act = ACTIVATIONS[getattr(cfg, "head_activation", "") or cfg.activation]
    _orthogonal_init(body.net, math.sqrt(2))
    if cfg.normalize_obs and body.kind == "image":
        raise TrainError(
            "--normalize-obs is for vector observations; image frames are scaled by their "
            "high (255) inside the network: pass --no-normalize-obs"
        )
    obs_norm = RunningObsNorm(obs_space.shape) if cfg.normalize_obs else None
    obs_key = obs_norm.out_keys[0] if obs_norm is not None else "observation"
    trunk, width = trunk_module(body, obs_key, "hidden", recurrent=getattr(cfg, "recurrent", ""),
                                rnn_hidden=getattr(cfg, "rnn_hidden", 64))
    hidden = [width]
    common = trunk if obs_norm is None else SafeSequential(obs_norm, trunk)

    def head_mlp(out_features: int, last_gain: float) -> nn.Module:
        mlp = MLP(
            in_features=hidden[-1],
            out_features=out_features,
            num_cells=list(cfg.head_hidden),
            activation_class=head_act,
        )
        _orthogonal_init(mlp, math.sqrt(2), last_gain)
        return mlp

    if is_discrete(action_space):
        n = int(action_space.n)
        head = head_mlp(n, 0.01)
        onehot = cfg.discrete_dist == "onehot"
        policy = ProbabilisticActor(
            SafeModule(head, in_keys=["hidden"], out_keys=["logits"]),
            in_keys=["logits"],
            out_keys=["action"],
            distribution_class=OneHotCategorical if onehot else IndexCategorical,
            distribution_kwargs={"validate_args": False},
            return_log_prob=True,
            spec=OneHot(n, dtype=torch.int64) if onehot else Categorical(n),
        )
    else:
        act_dim = int(np.prod(action_space.shape))
        if cfg.state_dependent_std:
            net = nn.Sequential(head_mlp(2 * act_dim, 0.01), NormalParamExtractor())
        else:
            head = _LocAndParamScale(head_mlp(act_dim, 0.01), act_dim, cfg.log_std_init)
            net = nn.Sequential(head, NormalParamExtractor(scale_mapping="exp"))
        policy = tanh_normal_actor(net, "hidden", action_space)
    value_net = head_mlp(1, 1.0)
    value = ValueOperator(value_net, in_keys=["hidden"])
    agent = ActorValueOperator(common, policy, value)
    return AgentParts(agent, common, policy, value, trunk, obs_norm)


def user_agent_parts(agent: Any) -> AgentParts:
    """The parts PPO trains of a user-built ``ActorValueOperator`` (trunk, policy head, value head).

    A ``(policy, value)`` pair (an ``ActorCriticWrapper``), both reading ``observation``,
    gets a no-op trunk (``observation`` in, ``observation`` out).

    Examples:
        >>> from tdrl.modules import ActorValueOperator, SafeModule, ValueOperator
        >>> bad = SafeModule(nn.Linear(4, 2), in_keys=["observation"], out_keys=["logits"])
        >>> user_agent_parts(bad)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: module=: PPO trains an ActorValueOperator (trunk, policy head, value head), got SafeModule
    """
    if isinstance(agent, ActorCriticWrapper):  # a (policy, value) pair: no trunk of its own
        agent = _with_identity_trunk(agent)
    if not isinstance(agent, ActorValueOperator):
        raise TrainError(
            "module=: PPO trains an ActorValueOperator (trunk, policy head, value head), "
            f"got {type(agent).__name__}"
        )
    common, policy, value = agent.module[0], agent.get_policy_head(), agent.get_value_head()
    return AgentParts(agent, common, policy, value, common, None)


def _with_identity_trunk(pair: Any) -> Any:
    """``(policy, value)`` reading ``observation`` as an ``ActorValueOperator`` with a no-op trunk."""
    policy, value = pair.get_policy_operator(), pair.get_value_operator()
    trunk = SafeModule(nn.Identity(), in_keys=["observation"], out_keys=["observation"])
    try:
        return ActorValueOperator(trunk, policy, value)
    except (TypeError, ValueError) as err:
        raise TrainError(
            f"module=: the (policy, value) pair must both read 'observation': {err}"
        ) from None


def check_agent(parts: AgentParts, obs_space: Any, action_space: Any) -> bool | None:
    """Run the operator once on two observations and check what PPO needs from it.

    It must read only ``observation`` and write ``action`` (indices or one-hot
    for ``Discrete``, the ``Box``'s shape otherwise), its log-probability and
    ``state_value``; its policy head must give its distribution (``get_dist``).
    Returns whether discrete actions are one-hot (``None`` for ``Box``).
    Raises :class:`TrainError` naming what is missing and what was found.

    Examples:
        >>> import gymnasium as gym
        >>> from tdrl.recipes.ppo import PPOConfig
        >>> parts = build_agent(PPOConfig(), gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
        >>> check_agent(parts, gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
        False
    """
    from tdrl.envs.utils import ExplorationType, set_exploration_type

    agent, policy = parts.agent, parts.policy
    memory = make_memory(agent)  # a recurrent trunk also reads its state and is_init
    extra = [k for k in agent.in_keys if k != "observation" and k not in memory.keys]
    if extra:
        raise TrainError(
            f"module=: the operator reads {extra}, but PPO gives it only 'observation' "
            f"(its in_keys: {list(agent.in_keys)})"
        )
    if not callable(getattr(policy, "get_dist", None)):
        raise TrainError(
            f"module=: the policy head ({type(policy).__name__}) has no get_dist(); PPO needs a "
            "ProbabilisticActor to score its actions"
        )
    obs = obs_tensor(np.stack([obs_space.sample(), obs_space.sample()]))
    param = next(agent.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
            out = agent(memory.inputs(obs.to(device)))
    except Exception as err:  # noqa: BLE001 - the user's network, reported with its message
        raise TrainError(
            f"module=: the operator failed on a batch of 2 observations of shape "
            f"{tuple(obs_space.shape)}: {type(err).__name__}: {err}"
        ) from None
    found = sorted(str(k) for k in out.keys(include_nested=True, leaves_only=True))
    log_prob_key = getattr(policy, "log_prob_key", "sample_log_prob")
    for key, hint in (("action", ""), (log_prob_key, " (build the ProbabilisticActor with "
                      "return_log_prob=True)"), ("state_value", " (a ValueOperator head)")):
        if key not in out.keys(include_nested=True):
            raise TrainError(f"module=: the operator wrote no {key!r}{hint}; it wrote {found}")
    action, value = out["action"], out["state_value"]
    if tuple(value.shape) not in ((2,), (2, 1)):
        raise TrainError(
            f"module=: state_value has shape {tuple(value.shape)} for a batch of 2; expected "
            "(2, 1) or (2,)"
        )
    if is_discrete(action_space):
        n = int(action_space.n)
        logits = getattr(policy.get_dist(out), "logits", None)
        if logits is not None and logits.shape[-1] != n:
            raise TrainError(
                f"module=: the policy's distribution has {logits.shape[-1]} categories; "
                f"{action_space} needs {n}"
            )
        if tuple(action.shape) == (2,):
            return False
        if tuple(action.shape) == (2, n):
            return True
        raise TrainError(
            f"module=: the action has shape {tuple(action.shape)} for a batch of 2 in "
            f"{action_space}; expected (2,) (indices) or (2, {n}) (one-hot)"
        )
    expected = (2, *action_space.shape)
    if tuple(action.shape) != expected:
        raise TrainError(
            f"module=: the action has shape {tuple(action.shape)} for a batch of 2; "
            f"{action_space} needs {expected}"
        )
    return None


def prepare(cfg: Any, env: EnvInfo) -> None:
    """Build the agent once before anything is written: check it, resolve ``discrete_dist``."""
    parts = build_agent(cfg, env.observation_space, env.action_space)
    onehot = check_agent(parts, env.observation_space, env.action_space)
    if cfg.module and onehot is not None:  # the user's head decides the action format
        cfg.discrete_dist = "onehot" if onehot else "categorical"


def make_act(cfg: Any, env: EnvInfo, model_state: dict, device: Any) -> ActFn:
    """Deterministic policy ``obs batch (numpy) -> env actions`` from saved weights.

    Examples:
        >>> import gymnasium as gym
        >>> from tdrl.recipes.ppo import PPOConfig
        >>> env = EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), None)
        >>> parts = build_agent(PPOConfig(), *env[:2])
        >>> act = make_act(PPOConfig(), env, parts.agent.state_dict(), "cpu")
        >>> act(np.zeros((3, 4), dtype=np.float32)).shape
        (3,)
    """
    policy = make_policy(cfg, env, model_state, device)
    return PolicyAct(policy, device, action_to_env(env.action_space, cfg))


def make_policy(cfg: Any, env: EnvInfo, model_state: dict, device: Any) -> Any:
    """The policy operator (trunk + policy head, eval mode) with saved weights, for export."""
    agent = build_agent(cfg, env.observation_space, env.action_space).agent
    return load_policy_operator(agent, model_state, device)


def action_to_env(action_space: Any, cfg: Any):
    """``action tensor -> numpy`` in the env's format (indices, or the Box's shape)."""
    if is_discrete(action_space):
        if cfg.discrete_dist == "onehot":
            return lambda a: a.argmax(-1).cpu().numpy()
        return lambda a: a.cpu().numpy()
    return box_to_env(action_space)
