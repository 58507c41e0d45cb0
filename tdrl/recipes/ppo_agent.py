"""PPO's options and networks: the shared-trunk ``ActorValueOperator`` and the deterministic policy built from it.

``PPOConfig`` (PPO's options) and ``ENV_DEFAULTS`` (its per-env settings) live here
too; ``build_agent`` reads the network fields of a ``PPOConfig`` (``hidden``,
``head_hidden``, ``activation``, ``head_activation``, ``discrete_dist``,
``state_dependent_std``, ``log_std_init``, ``normalize_obs``, ``recurrent``, ``rnn_hidden``);
:mod:`tdrl.recipes.ppo` holds the algorithm (and re-exports both).

Examples:
    >>> import gymnasium as gym
    >>> from tdrl.recipes.ppo import PPOConfig
    >>> parts = build_agent(PPOConfig(), gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    >>> type(parts.agent).__name__
    'ActorValueOperator'
"""

from __future__ import annotations

import dataclasses
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
from tdrl.recipes.config import CommonConfig, TrainError, check_positive, check_range, option
from tdrl.recipes.envs import ActFn, EnvInfo, is_discrete
from tdrl.recipes.memory import PolicyAct, make_memory
from tdrl.recipes.remote import RemoteConfig
from tdrl.recipes.trunks import ACTIVATIONS, build_trunk, trunk_module
from tdrl.recipes.user_module import build_user_module

__all__ = ["ENV_DEFAULTS", "AgentParts", "PPOConfig", "action_to_env", "build_agent", "check_agent",
           "make_act", "make_policy", "prepare"]


# ----------------------------------------------------------------------------- configuration
@dataclasses.dataclass
class PPOConfig(RemoteConfig, CommonConfig):
    """PPO hyperparameters. Defaults are RL-Zoo's CartPole-v1 ones (see ``ENV_DEFAULTS``).

    Examples:
        >>> cfg = PPOConfig()
        >>> cfg.num_envs * cfg.n_steps, cfg.batch_size, cfg.epochs
        (256, 256, 20)
        >>> PPOConfig(batch_size=300).validate()
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: --batch-size 300 must be <= num_envs * n_steps = 256
    """

    n_steps: int = option(32, "rollout steps per env")
    batch_size: int = option(256, "minibatch size")
    epochs: int = option(20, "passes over each rollout")
    lr: float = option(1e-3, "Adam learning rate")
    anneal_lr: bool = option(True, "decay the learning rate linearly to 0")
    gamma: float = option(0.98, "discount factor")
    gae_lambda: float = option(0.8, "GAE lambda")
    clip: float = option(0.2, "surrogate clip range")
    anneal_clip: bool = option(True, "decay the clip range linearly to 0")
    ent_coef: float = option(0.0, "entropy bonus weight")
    vf_coef: float = option(0.5, "value loss weight")
    max_grad_norm: float = option(0.5, "gradient norm clipping")
    norm_adv: bool = option(True, "normalize advantages per minibatch")
    reward_scale: float = option(
        0.1,
        "rewards are multiplied by this for learning, keeping the value loss (which shares the "
        "trunk with the policy) small; episode stats use raw rewards",
    )
    hidden: tuple = option((64, 64), "shared trunk layer sizes")
    head_hidden: tuple = option((), "hidden layers of each head after the trunk (none: linear)")
    activation: str = option("tanh", "trunk activation", choices=["tanh", "relu", "elu"])
    head_activation: str = option(
        "", "activation of the heads' hidden layers (none: --activation)",
        choices=["", "tanh", "relu", "elu"],
    )
    discrete_dist: str = option(
        "categorical",
        "discrete head: Categorical (index actions) or OneHotCategorical",
        choices=["categorical", "onehot"],
    )
    state_dependent_std: bool = option(
        True, "continuous head: scale from the network (else a learned parameter)"
    )
    log_std_init: float = option(0.0, "continuous head: initial log std (state-independent std)")
    module: str = option(
        "",
        "train this network instead of the recipe's: package.module:factory, called as "
        "factory(observation_space, action_space) -> ActorValueOperator (reads observation; "
        "writes action, its log-prob and state_value); tdrl.train(module=...) also takes the "
        "module itself",
    )
    normalize_obs: bool = option(
        False,
        "normalize observations by running mean/var (RunningObsNorm before the trunk, updated "
        "from collected observations only; clip 10, eps 1e-8 as SB3's VecNormalize)",
    )
    recurrent: str = option(
        "",
        "memory layer at the end of the shared trunk: lstm or gru (trunk -> LSTM/GRU -> heads; "
        "collection carries each env's state, the update replays whole env sequences from "
        "their stored state)",
        choices=["", "lstm", "gru"],
    )
    rnn_hidden: int = option(64, "--recurrent: units of the LSTM/GRU layer")
    rnn_seq_len: int = option(
        0, "--recurrent: length of the replayed sequences (truncated BPTT); 0 = n_steps"
    )
    cnn: str = option(
        "auto",
        "image observations: the trunk's convolutions before --hidden (nature: 32@8x8/4, "
        "64@4x4/2, 64@3x3/1; minatar: 16@3x3/1; auto: nature from 36x36 frames up)",
        choices=["auto", "nature", "minatar"],
    )

    def validate(self) -> None:
        """Check the numbers before anything is created (raises ``TrainError``)."""
        super().validate()
        check_positive(
            self, ["n_steps", "batch_size", "epochs", "lr", "max_grad_norm", "reward_scale"]
        )
        self.validate_remote()
        self.validate_recurrent()
        if self.module and self.normalize_obs:
            raise TrainError(
                "--normalize-obs applies to the recipe's own network only; with --module put a "
                "RunningObsNorm (tdrl.modules) first in your trunk and pass --no-normalize-obs"
            )
        rollout = self.total_envs * self.n_steps
        if self.batch_size > rollout:
            raise TrainError(
                f"--batch-size {self.batch_size} must be <= num_envs * n_steps"
                f"{' * workers' if self.workers else ''} = {rollout}"
            )
        check_range(self, ["gamma", "gae_lambda", "clip", "lr"], 0.0, 1.0)
        check_range(self, ["ent_coef", "vf_coef"], 0.0, math.inf)

    def validate_recurrent(self) -> None:
        """The ``--recurrent`` options: sequences that tile the rollout, no --module / --workers."""
        if not self.recurrent:
            return
        check_positive(self, ["rnn_hidden"])
        if self.rnn_seq_len < 0:
            raise TrainError(f"--rnn-seq-len must be >= 0 (0 = n_steps), got {self.rnn_seq_len}")
        if self.module:
            raise TrainError("--recurrent builds the recipe's own network; with --module put the "
                             "LSTMModule/GRUModule in your operator and drop --recurrent")
        if self.workers:
            raise TrainError("--recurrent does not run with --workers yet (the Ray workers do "
                             "not carry recurrent state); drop --workers")
        length = self.rnn_seq_len or self.n_steps
        if self.n_steps % length:
            raise TrainError(f"--rnn-seq-len {length} must divide --n-steps {self.n_steps} "
                             "(the update replays each env's rollout in sequences of that length)")
        if self.batch_size % length:
            raise TrainError(f"--batch-size {self.batch_size} must be a multiple of the sequence "
                             f"length {length} (--rnn-seq-len, 0 = n_steps): minibatches are "
                             "whole sequences")


# Per-env defaults on top of the dataclass defaults ("box" = any continuous env).
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "CartPole-v1": {"total_steps": 100_000},
    "box": {  # RL-Zoo's Pendulum-v1 PPO
        "num_envs": 4, "n_steps": 1024, "batch_size": 64, "epochs": 10, "gamma": 0.9,
        "gae_lambda": 0.95, "lr": 1e-3, "anneal_lr": False, "anneal_clip": False,
        "total_steps": 100_000,
    },
    "Pendulum-v1": {},
    # masked-velocity tasks (run with --recurrent): RL-Zoo's ppo_lstm entries normalize
    # observations; CartPoleNoVel otherwise has CartPole's settings (8 envs x 32 steps, 20
    # epochs, batch 256, gamma 0.98, lambda 0.8, lr and clip annealed from 1e-3 / 0.2)
    "CartPoleNoVel-v1": {"total_steps": 100_000, "normalize_obs": True},
    # Pendulum's settings; minibatches of 4 sequences of 64 steps
    "PendulumNoVel-v1": {"normalize_obs": True, "batch_size": 256, "rnn_seq_len": 64},
}
# MuJoCo (the ``mujoco`` extra): SB3's PPO defaults on one env, observations normalized as in
# RL-Zoo's MuJoCo entries (``normalize: true``); benchmarks/halfcheetah.py uses these settings.
_MUJOCO = {
    "num_envs": 1, "n_steps": 2048, "batch_size": 64, "epochs": 10, "lr": 3e-4,
    "anneal_lr": False, "gamma": 0.99, "gae_lambda": 0.95, "clip": 0.2, "anneal_clip": False,
    "reward_scale": 1.0, "state_dependent_std": False, "log_std_init": 0.0,
    "normalize_obs": True, "total_steps": 1_000_000,
}
MUJOCO_ENVS = ("Ant", "HalfCheetah", "Hopper", "Humanoid", "HumanoidStandup",
               "InvertedDoublePendulum", "InvertedPendulum", "Pusher", "Reacher", "Swimmer",
               "Walker2d")
ENV_DEFAULTS.update({f"{name}-v{v}": _MUJOCO for v in (5, 4) for name in MUJOCO_ENVS})
# Pixels (the atari / minatar extras): CleanRL's / RL-Zoo's Atari PPO (8 envs x 128 steps,
# 4 epochs of 4 minibatches, lr and clip annealed, Nature CNN + 512); MinAtar keeps them with
# the MinAtar paper's small network (16@3x3 + 128), a 64x64 tanh MLP per head (SB3's default
# heads on a custom extractor: linear heads plateau at ~5 on Breakout, for SB3 too) and a
# 1M-step budget.
_ATARI_PPO = {
    "num_envs": 8, "n_steps": 128, "batch_size": 256, "epochs": 4, "lr": 2.5e-4,
    "anneal_lr": True, "gamma": 0.99, "gae_lambda": 0.95, "clip": 0.1, "anneal_clip": True,
    "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "reward_scale": 1.0,
    "hidden": (512,), "activation": "relu", "total_steps": 10_000_000,
    "checkpoint_every": 100_000,
}
ENV_DEFAULTS["ALE/*"] = _ATARI_PPO
ENV_DEFAULTS["MinAtar/*"] = {**_ATARI_PPO, "hidden": (128,), "head_hidden": (64, 64),
                             "head_activation": "tanh", "total_steps": 1_000_000}


# ----------------------------------------------------------------------------- networks


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
