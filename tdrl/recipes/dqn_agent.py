"""DQN's configuration and network: ``DQNConfig``, the ``QValueActor`` it trains, its greedy policy.

``DQNConfig`` holds the flags (tuned on CartPole-v1) and ``ENV_DEFAULTS`` the
per-env settings (Atari, MinAtar); ``build_qnet`` reads the network fields
(``hidden``, ``activation``, ``dueling``, ``cnn``, ``module``); ``prepare``
checks the network before a run writes anything; ``make_act`` and
``make_policy`` rebuild it from saved weights for ``tdrl eval`` and export.
:mod:`tdrl.recipes.dqn` holds the algorithm.

Examples:
    >>> import gymnasium as gym
    >>> qnet = build_qnet(DQNConfig(), gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    >>> type(qnet).__name__, qnet.in_keys
    ('QValueActor', ['observation'])
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from torch import nn

from tdrl.data import Categorical
from tdrl.modules import (
    MLP,
    DistributionalQValueActor,
    DuelingCnnDQNet,
    DuelingMlpDQNet,
    QValueActor,
)
from tdrl.recipes.blocks import deterministic_act, obs_tensor
from tdrl.recipes.config import CommonConfig, TrainError, check_positive, check_range, option
from tdrl.recipes.envs import EnvInfo
from tdrl.recipes.offpolicy import check_offpolicy
from tdrl.recipes.remote import ApexConfig
from tdrl.recipes.trunks import image_features, obs_kind
from tdrl.recipes.user_module import build_user_module

__all__ = ["DQNConfig", "ENV_DEFAULTS", "build_qnet", "make_act", "make_policy", "prepare"]


@dataclasses.dataclass
class DQNConfig(ApexConfig, CommonConfig):
    """DQN hyperparameters, tuned on CartPole-v1 (solves within 50k steps).

    RL-Zoo's CartPole-v1 DQN (lr 2.3e-3, batch 64, 100k buffer, train every
    256 steps with 128 gradient steps, target refreshed every 10 steps,
    epsilon to 0.04 over 16% of the run) on a 128x128 network, plus 3-step
    returns, Double DQN and a learning rate decayed to 0, which make every
    seed reach 500 and stay there instead of stalling around 100-200.

    Examples:
        >>> cfg = DQNConfig()
        >>> cfg.total_steps, cfg.double_dqn
        (50000, True)
        >>> DQNConfig(eps_end=1.5).validate()
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: --eps-end must be in [0, 1], got 1.5
    """

    total_steps: int = option(
        50_000, "environment steps to train for (rounded up to a whole vector step)"
    )
    num_envs: int = option(4, "parallel environments (gymnasium SyncVectorEnv)")
    lr: float = option(2.3e-3, "Adam learning rate")
    anneal_lr: bool = option(True, "decay the learning rate linearly to 0")
    gamma: float = option(0.99, "discount factor")
    buffer_size: int = option(100_000, "replay buffer capacity (transitions)")
    batch_size: int = option(64, "minibatch size")
    learning_starts: int = option(1_000, "env steps of pure collection before learning")
    train_freq: int = option(256, "env steps between training phases")
    gradient_steps: int = option(128, "gradient steps per training phase")
    target_update: int = option(10, "env steps between target network updates")
    tau: float = option(1.0, "target update rate (1 = hard copy)")
    eps_init: float = option(1.0, "initial epsilon")
    eps_end: float = option(0.04, "final epsilon")
    exploration_fraction: float = option(0.16, "fraction of total steps over which epsilon anneals")
    n_step: int = option(3, "n-step returns (1 = classic one-step DQN target)")
    double_dqn: bool = option(True, "Double DQN target (online argmax, target value)")
    max_grad_norm: float = option(10.0, "gradient norm clipping")
    hidden: tuple = option((128, 128), "Q-network layers")
    activation: str = option("relu", "activation", choices=["relu", "tanh", "elu"])
    dueling: bool = option(
        False, "dueling Q-network (value + advantage heads; DuelingCnnDQNet on images)"
    )
    cnn: str = option(
        "auto",
        "image observations: the convolutions before --hidden (nature: 32@8x8/4, 64@4x4/2, "
        "64@3x3/1; minatar: 16@3x3/1; auto: nature from 36x36 frames up)",
        choices=["auto", "nature", "minatar"],
    )
    log_every: int = option(1_000, "env steps between metrics.csv rows")
    module: str = option(
        "",
        "train this network instead of the recipe's: package.module:factory, called as "
        "factory(observation_space, action_space) -> QValueActor with index actions "
        "(action_space='categorical') reading observation, or a DistributionalQValueActor "
        "(trained with C51's loss on its support); tdrl.train(module=...) also takes "
        "the module itself",
    )

    def validate(self) -> None:
        """Check the numbers before anything is created (raises ``TrainError``)."""
        super().validate()
        self.validate_remote()
        # one env step can flush up to num_envs * n_step transitions into the buffer at once
        check_offpolicy(self, per_step="num_envs * n_step")
        check_positive(self, ["target_update", "max_grad_norm", "n_step"])
        check_range(self, ["eps_init", "eps_end", "exploration_fraction", "lr"], 0.0, 1.0)

ENV_DEFAULTS: dict[str, dict[str, Any]] = {"CartPole-v1": {}}
# Pixels (the atari / minatar extras): RL-Zoo's Atari DQN (one env, 100k buffer, lr 1e-4,
# batch 32, a gradient step every 4 env steps, target copied every 1,000, epsilon to 0.01 over
# 10% of the run, one-step vanilla DQN; Nature CNN + 512). MinAtar's 1M-step budget: learning
# starts after 5k steps (not 100k), the MinAtar paper's small network (16@3x3 + 128), and 8 envs
# acting together with 2 gradient steps per 8 env steps (the same 1 per 4, in fewer phases).
_ATARI_DQN = {
    "num_envs": 1, "lr": 1e-4, "anneal_lr": False, "gamma": 0.99, "buffer_size": 100_000,
    "batch_size": 32, "learning_starts": 100_000, "train_freq": 4, "gradient_steps": 1,
    "target_update": 1_000, "tau": 1.0, "eps_init": 1.0, "eps_end": 0.01,
    "exploration_fraction": 0.1, "n_step": 1, "double_dqn": False, "max_grad_norm": 10.0,
    "hidden": (512,), "activation": "relu", "total_steps": 10_000_000, "log_every": 10_000,
    "checkpoint_every": 100_000,
}
ENV_DEFAULTS["ALE/*"] = _ATARI_DQN
ENV_DEFAULTS["MinAtar/*"] = {
    **_ATARI_DQN, "learning_starts": 5_000, "hidden": (128,), "total_steps": 1_000_000,
    "num_envs": 8, "train_freq": 8, "gradient_steps": 2,
}



def build_qnet(cfg: DQNConfig, obs_space: Any, action_space: Any) -> Any:
    """``QValueActor`` over an ``MLP`` (index actions, ``Categorical`` spec).

    Examples:
        >>> import gymnasium as gym
        >>> from tensordict import TensorDict
        >>> qnet = build_qnet(DQNConfig(), gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(3))
        >>> td = qnet(TensorDict(observation=torch.zeros(5, 4), batch_size=[5]))
        >>> td["action"].shape, td["action_value"].shape
        (torch.Size([5]), torch.Size([5, 3]))
    """
    if cfg.module:
        qnet = build_user_module(cfg.module, obs_space, action_space)
        if not isinstance(qnet, QValueActor | DistributionalQValueActor):
            raise TrainError(
                "module=: DQN trains a QValueActor or a DistributionalQValueActor, got "
                f"{type(qnet).__name__}"
            )
        return qnet
    act = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}[cfg.activation]
    n = int(action_space.n)
    if obs_kind(obs_space) == "image":  # ScaleFrames + ConvNet, then dense layers: uint8 in
        features, width = image_features(obs_space, cfg.cnn)
        if cfg.dueling:
            dueling = DuelingCnnDQNet(n, mlp_kwargs={"in_features": width, "num_cells": list(
                cfg.hidden), "depth": len(cfg.hidden), "activation_class": act})
            dueling.features = features  # the same convolutions, reading uint8 frames
            net: nn.Module = dueling
        else:
            head = MLP(in_features=width, out_features=n, num_cells=list(cfg.hidden),
                       activation_class=act)
            net = nn.Sequential(features, head)
        return QValueActor(net, in_keys=["observation"], spec=Categorical(n))
    if cfg.dueling:
        net = DuelingMlpDQNet(  # the hidden layers shared, then linear value/advantage heads
            n,
            mlp_kwargs_feature={"in_features": int(np.prod(obs_space.shape)),
                                "num_cells": list(cfg.hidden[:-1]), "depth": len(cfg.hidden) - 1,
                                "out_features": cfg.hidden[-1], "activation_class": act},
            mlp_kwargs_output={"in_features": cfg.hidden[-1], "num_cells": [], "depth": 0},
        )
        return QValueActor(net, in_keys=["observation"], spec=Categorical(n))
    mlp = MLP(
        in_features=int(np.prod(obs_space.shape)),
        out_features=n,
        num_cells=list(cfg.hidden),
        activation_class=act,
    )
    return QValueActor(mlp, in_keys=["observation"], spec=Categorical(n))


def prepare(cfg: DQNConfig, env: EnvInfo) -> None:
    """Build the Q-network once before anything is written and check what DQN needs of it.

    It must read only ``observation``; its network (the actor's first step) must
    map a batch of observations to ``[batch, n]`` action values (a
    ``DistributionalQValueActor``: ``[batch, n_atoms, n]`` logits over an evenly
    spaced support); the actor must write index actions (DQN stores them as
    indices). Raises ``TrainError``.

    Examples:
        >>> import gymnasium as gym
        >>> from tdrl.modules import QValueActor
        >>> env = EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), None)
        >>> prepare(DQNConfig(), env)
    """
    obs_space, action_space = env.observation_space, env.action_space
    qnet, n = build_qnet(cfg, obs_space, action_space), int(action_space.n)
    if list(qnet.in_keys) != ["observation"]:
        raise TrainError(
            f"module=: the Q-network reads {list(qnet.in_keys)}; DQN gives it only 'observation'"
        )
    obs = obs_tensor(np.stack([obs_space.sample(), obs_space.sample()]))
    param = next(qnet.parameters(), None)
    obs = obs.to(param.device if param is not None else "cpu")
    try:
        with torch.no_grad():
            values = qnet[0].module(obs)
            action = qnet(TensorDict({"observation": obs}, [2], device=obs.device))["action"]
    except Exception as err:  # noqa: BLE001 - the user's network, reported with its message
        raise TrainError(
            f"module=: the Q-network failed on a batch of 2 observations of shape "
            f"{tuple(obs_space.shape)}: {type(err).__name__}: {err}"
        ) from None
    expected = (2, n)
    if isinstance(qnet, DistributionalQValueActor):
        from tdrl.recipes.dqn_distributional import check_support

        support = qnet.qvalue_module.support
        check_support(support)
        expected = (2, support.numel(), n)
    if tuple(values.shape) != expected:
        what = " (atoms, actions)" if len(expected) == 3 else ""
        raise TrainError(
            f"module=: the network gives action values of shape {tuple(values.shape)} for a "
            f"batch of 2; {action_space} needs {expected}{what}"
        )
    if tuple(action.shape) != (2,) or action.is_floating_point():
        raise TrainError(
            f"module=: the actor writes actions of shape {tuple(action.shape)} ({action.dtype}); "
            "DQN stores index actions: build the QValueActor with action_space='categorical'"
        )


def make_act(cfg: DQNConfig, env: EnvInfo, model_state: dict, device: Any):
    """Greedy policy ``obs batch (numpy) -> env actions`` from saved weights.

    Examples:
        >>> import gymnasium as gym
        >>> env = EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), None)
        >>> qnet = build_qnet(DQNConfig(), *env[:2])
        >>> act = make_act(DQNConfig(), env, qnet.state_dict(), "cpu")
        >>> act(np.zeros((3, 4), dtype=np.float32)).shape
        (3,)
    """
    return deterministic_act(make_policy(cfg, env, model_state, device), device)


def make_policy(cfg: DQNConfig, env: EnvInfo, model_state: dict, device: Any):
    """The Q-value actor (eval mode) with saved weights, for export."""
    qnet = build_qnet(cfg, env.observation_space, env.action_space)
    qnet.load_state_dict(model_state)
    return qnet.to(device).eval()

