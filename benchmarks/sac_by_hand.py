"""The SAC update written by hand in plain torch: the floor for any eager implementation.

No TensorDict, no distribution class, no modules beyond parameter tensors:
the actor and both critics are ``F.linear`` stacks, the squashed Gaussian is
written out (scale from tensordict's ``NormalParamExtractor`` default mapping,
``softplus(x + bias) + 0.01``, as tdrl's actor), the three losses are summed and stepped by one fused Adam, and
the target critics are Polyak-averaged with one ``_foreach_lerp_``. Same
math and sizes as ``tdrl train sac`` (and SB3's SAC): 256x256 networks, twin
critics, the actor loss reading the critics through detached weights,
automatic entropy. ``benchmarks/sac_pendulum.py --where-time`` times it
beside tdrl's and SB3's updates, on batches from the same replay buffer, to
tell what any eager PyTorch SAC costs on this machine from what a library
adds.

    >>> import torch
    >>> sac = HandSAC(obs_dim=3, act_dim=1, low=-2.0, high=2.0, hidden=16)
    >>> batch = {"observation": torch.randn(8, 3), "action": torch.rand(8, 1) * 4 - 2,
    ...          "reward": torch.randn(8), "next_observation": torch.randn(8, 3),
    ...          "terminated": torch.zeros(8)}
    >>> critic_loss, actor_loss = sac.update(batch)
    >>> bool(torch.isfinite(critic_loss)), bool(torch.isfinite(actor_loss))
    (True, True)
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

# tensordict's NormalParamExtractor default: softplus(x + inv_softplus(1 - 0.01)) + 0.01
SCALE_BIAS = math.log(math.expm1(1.0 - 0.01))


def _mlp(sizes: list[int]) -> list[torch.Tensor]:
    """Weights and biases of a ReLU MLP, initialised like ``nn.Linear``."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        params.append(torch.empty(fan_out, fan_in).uniform_(-bound, bound).requires_grad_())
        params.append(torch.empty(fan_out).uniform_(-bound, bound).requires_grad_())
    return params


def _forward(x: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    last = len(params) // 2 - 1
    for i in range(last + 1):
        x = F.linear(x, params[2 * i], params[2 * i + 1])
        if i < last:
            x = x.relu_()
    return x


class HandSAC:
    """Actor, twin critics, their targets, the temperature and one fused Adam, as bare tensors."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        low: float,
        high: float,
        hidden: int = 256,
        lr: float = 1e-3,
        gamma: float = 0.99,
        tau: float = 0.005,
    ) -> None:
        self.actor = _mlp([obs_dim, hidden, hidden, 2 * act_dim])
        self.critics = [_mlp([obs_dim + act_dim, hidden, hidden, 1]) for _ in range(2)]
        self.targets = [[p.detach().clone() for p in q] for q in self.critics]
        self.log_alpha = torch.zeros((), requires_grad=True)
        self.half, self.shift = (high - low) / 2.0, (high + low) / 2.0
        self.target_entropy = -act_dim + act_dim * math.log(self.half)
        self.gamma, self.tau = gamma, tau
        params = self.actor + [p for q in self.critics for p in q] + [self.log_alpha]
        self.optimizer = torch.optim.Adam(params, lr=lr, fused=True)
        self.online_flat = [p for q in self.critics for p in q]
        self.target_flat = [p for q in self.targets for p in q]

    @classmethod
    def from_tdrl(cls, algo: Any) -> HandSAC:
        """The networks, temperature and settings of a ``tdrl.recipes.sac.SAC`` (copied)."""
        cfg, space = algo.cfg, algo.action_space
        hand = cls(1, 1, float(space.low[0]), float(space.high[0]), 1, cfg.lr, cfg.gamma, cfg.tau)
        actor = algo.parts.act_net
        hand.actor = [t.detach().clone().requires_grad_() for m in actor.modules()
                      if isinstance(m, torch.nn.Linear) for t in (m.weight, m.bias)]

        def critics(twin: torch.nn.Module) -> list[list[torch.Tensor]]:
            return [[t.detach()[q].clone() for w, b in zip(twin.weights, twin.biases)
                     for t in (w.transpose(1, 2), b.squeeze(1))] for q in range(twin.num_q)]

        hand.critics = [[p.requires_grad_() for p in q] for q in critics(algo.parts.twin)]
        hand.targets = critics(next(m for m in algo.target_agent.modules() if hasattr(m, "num_q")))
        hand.log_alpha = algo.log_alpha.detach().clone().requires_grad_()
        hand.target_entropy = algo.target_entropy
        params = hand.actor + [p for q in hand.critics for p in q] + [hand.log_alpha]
        hand.optimizer = torch.optim.Adam(params, lr=cfg.lr, fused=True)
        hand.online_flat = [p for q in hand.critics for p in q]
        hand.target_flat = [p for q in hand.targets for p in q]
        return hand

    def _sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, pre_scale = _forward(obs, self.actor).chunk(2, -1)
        scale = (F.softplus(pre_scale + SCALE_BIAS) + 0.01).clamp_min(1e-4)
        eps = torch.randn_like(loc)
        u = loc + scale * eps
        log_prob = -0.5 * eps.pow(2) - scale.log() - 0.5 * math.log(2 * math.pi)
        # log |d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), plus the affine map's log(half)
        log_prob = log_prob - 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u)) - math.log(self.half)
        return self.shift + self.half * torch.tanh(u), log_prob.sum(-1)

    def _q(self, obs: torch.Tensor, action: torch.Tensor, nets: list) -> torch.Tensor:
        x = torch.cat([obs, action], -1)
        return torch.cat([_forward(x, net) for net in nets], -1)

    def update(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """One gradient step on a replay minibatch; returns (critic loss, actor loss)."""
        obs, next_obs = batch["observation"], batch["next_observation"]
        alpha = self.log_alpha.detach().exp()
        a_pi, log_prob_pi = self._sample(obs)
        with torch.no_grad():
            a_next, log_prob_next = self._sample(next_obs)
            next_q = self._q(next_obs, a_next, self.targets).min(-1).values
            target = batch["reward"] + self.gamma * (1.0 - batch["terminated"]) * (
                next_q - alpha * log_prob_next
            )
        q = self._q(obs, batch["action"], self.critics)
        critic_loss = 0.5 * (q - target.unsqueeze(-1)).pow(2).mean(0).sum()
        frozen = [[p.detach() for p in net] for net in self.critics]
        q_pi = self._q(obs, a_pi, frozen).min(-1).values
        actor_loss = (alpha * log_prob_pi - q_pi).mean()
        alpha_loss = -(self.log_alpha * (log_prob_pi.detach() + self.target_entropy)).mean()
        self.optimizer.zero_grad(set_to_none=True)
        (critic_loss + actor_loss + alpha_loss).backward()
        self.optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(self.target_flat, self.online_flat, self.tau)
        return critic_loss.detach(), actor_loss.detach()
