"""User-built PPO operators for the module= tests (importable as ``user_nets``)."""
from __future__ import annotations

import torch
from torch import nn

from tdrl.modules import ActorValueOperator, ProbabilisticActor, SafeModule, ValueOperator


def make_agent(observation_space, action_space, *, obs_key="observation", log_prob=True,
               n_actions=None) -> ActorValueOperator:
    """TorchRL's documented shape: SafeModule trunk, Categorical logits head, value head."""
    n_obs, n = observation_space.shape[0], n_actions or int(action_space.n)
    trunk = SafeModule(nn.Sequential(nn.Linear(n_obs, 32), nn.Tanh()), in_keys=[obs_key],
                       out_keys=["hidden"])
    policy = ProbabilisticActor(
        SafeModule(nn.Linear(32, n), in_keys=["hidden"], out_keys=["logits"]),
        in_keys=["logits"], out_keys=["action"],
        distribution_class=torch.distributions.Categorical, return_log_prob=log_prob)
    value = ValueOperator(nn.Linear(32, 1), in_keys=["hidden"])
    return ActorValueOperator(trunk, policy, value)


def make_qnet(observation_space, action_space, *, action_space_kind="categorical", n=None):
    """A user's QValueActor (index actions by default)."""
    from tdrl.modules import MLP, QValueActor

    net = MLP(in_features=observation_space.shape[0], out_features=n or int(action_space.n),
              num_cells=[32])
    return QValueActor(net, in_keys=["observation"], action_space=action_space_kind)
