"""User-built networks for the module= tests (importable as ``user_nets``): PPO, DQN, SAC."""
from __future__ import annotations

import torch
from torch import nn

from tdrl.modules import (
    ActorValueOperator,
    ProbabilisticActor,
    SafeModule,
    TanhNormal,
    ValueOperator,
)


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



class NoRsampleTanhNormal(TanhNormal):
    """A TanhNormal that says it cannot be reparameterized (SAC must refuse it)."""

    has_rsample = False


class Scaled(nn.Module):
    """``net(*inputs) * w``: a parameter no reset_parameters() covers (SAC cannot copy it fresh)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.w = net, nn.Parameter(torch.ones(1))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(*inputs) * self.w


def make_sac_pair(observation_space, action_space, *, dist="tanh", critic_key="action",
                  twin=False, log_prob=True, act_dim=None, trunk=False, critic_out=None,
                  scale_layer=False):
    """A user's SAC networks: (TanhNormal actor, Q(s, a) critic), or an ActorCriticOperator."""
    from tdrl.modules import (
        MLP,
        ActorCriticOperator,
        IndependentNormal,
        NormalParamExtractor,
        ValueOperator,
    )

    n_obs, n_act = observation_space.shape[0], act_dim or action_space.shape[0]
    feature, n_feat = ("hidden", 16) if trunk else ("observation", n_obs)
    bounds = {"low": torch.as_tensor(action_space.low), "high": torch.as_tensor(action_space.high)}
    dist_class, dist_kwargs = {"tanh": (TanhNormal, bounds), "normal": (IndependentNormal, {}),
                               "no_rsample": (NoRsampleTanhNormal, bounds)}[dist]
    actor = ProbabilisticActor(
        SafeModule(nn.Sequential(nn.Linear(n_feat, 2 * n_act), NormalParamExtractor()),
                   in_keys=[feature], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], distribution_class=dist_class, distribution_kwargs=dist_kwargs,
        return_log_prob=log_prob)
    net = MLP(in_features=n_feat + action_space.shape[0], out_features=2 if twin else 1,
              num_cells=[16])
    critic = ValueOperator(Scaled(net) if scale_layer else net,
                           in_keys=[feature, critic_key],
                           out_keys=[critic_out or "state_action_value"])
    if trunk:
        body = SafeModule(nn.Sequential(nn.Linear(n_obs, 16), nn.ReLU()),
                          in_keys=["observation"], out_keys=["hidden"])
        return ActorCriticOperator(body, actor, critic)
    return actor, critic


def make_c51_qnet(observation_space, action_space, *, support=None, n=None, atoms=None):
    """A user's DistributionalQValueActor: [B, atoms, n] logits over ``support`` (index actions)."""
    from tdrl.modules import MLP, DistributionalQValueActor

    support = torch.linspace(0.0, 100.0, 51) if support is None else support
    n, atoms = n or int(action_space.n), atoms or support.numel()
    net = nn.Sequential(MLP(in_features=observation_space.shape[0], out_features=atoms * n,
                            num_cells=[64]), nn.Unflatten(-1, (atoms, n)))
    return DistributionalQValueActor(net, support=support, in_keys=["observation"],
                                     action_space="categorical")
