"""DQN's acting and learning step written by hand in plain torch: the floor for ``tdrl train dqn``.

No TensorDict, no modules: the Q-network and its target are ``F.linear``
stacks on bare weight tensors, the replay buffer is a dict of preallocated
tensors sampled with the same ``torch.randint`` call as tdrl's, the gradient
clip is ``_foreach_norm`` + ``_foreach_mul_``. :meth:`HandDQN.train_step` is
:meth:`tdrl.recipes.dqn.DQN.train_step` (uniform minibatch, Double DQN from
one online pass over ``[obs; next_obs]``, the n-step discount read from the
batch, smooth L1, clip, one fused Adam); :meth:`HandDQN.env_step` is
``DQN.env_step`` (greedy action, epsilon replacement, env step, finiteness
check, episode returns, final observations, n-step returns per env, replay
write, epsilon decay). ``benchmarks/floor.py`` checks and times both.

    >>> import torch
    >>> dqn = HandDQN(obs_dim=4, n_actions=2, hidden=(8, 8), capacity=32)
    >>> dqn.add({"observation": torch.randn(32, 4), "action": torch.randint(0, 2, (32,)),
    ...          "reward": torch.ones(32), "next_observation": torch.randn(32, 4),
    ...          "terminated": torch.zeros(32, dtype=torch.bool),
    ...          "discount": torch.full((32,), 0.99)})
    >>> loss, q = dqn.train_step()
    >>> bool(torch.isfinite(loss)), dqn.size
    (True, 32)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sac_by_hand import _mlp  # the same nn.Linear-like initialisation


def _forward(x: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    last = len(params) // 2 - 1
    for i in range(last + 1):
        x = F.linear(x, params[2 * i], params[2 * i + 1])
        if i < last:
            x = torch.relu(x)
    return x


class HandDQN:
    """Q-network, target, replay ring and fused Adam as bare tensors; DQN's step and update."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: tuple = (128, 128),
        lr: float = 2.3e-3,
        batch_size: int = 64,
        max_grad_norm: float = 10.0,
        capacity: int = 100_000,
        gamma: float = 0.99,
        n_step: int = 3,
    ) -> None:
        self.params = _mlp([obs_dim, *hidden, n_actions])
        self.target = [p.detach().clone() for p in self.params]
        self.n_actions, self.batch_size, self.max_grad_norm = n_actions, batch_size, max_grad_norm
        self.gamma, self.n_step = gamma, n_step
        self.capacity, self.pos, self.size = capacity, 0, 0
        self.storage: dict[str, torch.Tensor] | None = None
        self.pending: list[list] | None = None
        self.optimizer = torch.optim.Adam(self.params, lr=lr, fused=True)

    @classmethod
    def from_tdrl(cls, algo: Any) -> HandDQN:
        """The networks, settings and replay contents of a ``tdrl.recipes.dqn.DQN`` (copied)."""
        cfg = algo.cfg
        hand = cls(1, 1, tuple(cfg.hidden), cfg.lr, cfg.batch_size, cfg.max_grad_norm,
                   cfg.buffer_size, cfg.gamma, cfg.n_step)

        def weights(net: torch.nn.Module) -> list[torch.Tensor]:
            return [t.detach().clone() for m in net.modules() if isinstance(m, torch.nn.Linear)
                    for t in (m.weight, m.bias)]

        hand.params = [p.requires_grad_() for p in weights(algo.q_values)]
        hand.target = weights(algo.target_q_values)
        hand.n_actions = hand.params[-1].shape[0]
        hand.optimizer = torch.optim.Adam(hand.params, lr=algo.optimizer.param_groups[0]["lr"],
                                          fused=True)
        buf = algo.buffer
        hand.storage = {k: v.clone() for k, v in buf.storage.items()}
        hand.pos, hand.size = buf.pos, buf.size
        return hand

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        """Write transitions into the ring (the oldest are overwritten once full)."""
        n = next(iter(batch.values())).shape[0]
        if self.storage is None:
            self.storage = {k: torch.zeros(self.capacity, *v.shape[1:], dtype=v.dtype)
                            for k, v in batch.items()}
        if self.pos + n <= self.capacity:
            for k, v in batch.items():
                self.storage[k][self.pos : self.pos + n] = v
        else:
            idx = (torch.arange(n) + self.pos) % self.capacity
            for k, v in batch.items():
                self.storage[k][idx] = v
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``DQN.train_step``: one Double-DQN gradient step on a uniform minibatch."""
        idx = torch.randint(0, self.size, (self.batch_size,))
        s = self.storage
        obs, next_obs = s["observation"][idx], s["next_observation"][idx]
        b = obs.shape[0]
        q_both = _forward(torch.cat([obs, next_obs]), self.params)
        next_action = q_both[b:].detach().argmax(-1, keepdim=True)
        with torch.no_grad():
            next_q = _forward(next_obs, self.target).gather(-1, next_action).squeeze(-1)
            target = s["reward"][idx] + s["discount"][idx] * (~s["terminated"][idx]).float() * next_q
        q = q_both[:b].gather(-1, s["action"][idx].unsqueeze(-1)).squeeze(-1)
        loss = F.smooth_l1_loss(q, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in self.params]
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        torch._foreach_mul_(grads, (self.max_grad_norm / (total + 1e-6)).clamp_(max=1.0))
        self.optimizer.step()
        return loss.detach(), q.detach().mean()

    def _nstep(self, obs, action, reward, next_obs, terminated, done) -> list[tuple]:
        if self.pending is None:
            self.pending = [[] for _ in range(len(obs))]
        out, g = [], self.gamma
        for i, steps in enumerate(self.pending):
            steps.append((obs[i], int(action[i]), float(reward[i])))
            if done[i] or len(steps) == self.n_step:
                term = bool(terminated[i]) if done[i] else False
                while steps:
                    ret = sum(g**k * r for k, (_, _, r) in enumerate(steps))
                    out.append((steps[0][0], steps[0][1], ret, next_obs[i], term, g ** len(steps)))
                    steps.pop(0)
                    if not done[i]:
                        break
        return out

    @torch.no_grad()
    def env_step(self, envs: Any, obs: torch.Tensor, eps: float,
                 returns: np.ndarray) -> torch.Tensor:
        """``DQN.env_step``: one epsilon-greedy vector step, stored; returns the next observation."""
        n = obs.shape[0]
        action = _forward(obs, self.params).argmax(-1)
        explore = torch.rand(n) < eps
        action = torch.where(explore, torch.randint(0, self.n_actions, (n,)), action)
        action_np = action.numpy()
        next_obs, reward, terminated, truncated, info = envs.step(action_np)
        if not (np.isfinite(next_obs).all() and np.isfinite(reward).all()):
            raise FloatingPointError("non-finite observation or reward")
        done = terminated | truncated
        returns += reward
        returns[done] = 0.0
        final = next_obs
        if done.any():
            final = next_obs.copy()
            final[done] = np.stack([info["final_obs"][i] for i in np.flatnonzero(done)])
        ready = self._nstep(obs.numpy(), action_np, reward, final, terminated, done)
        if ready:
            o, a, r, o2, term, disc = zip(*ready)
            self.add({"observation": torch.as_tensor(np.stack(o)),
                      "action": torch.tensor(a, dtype=torch.long),
                      "reward": torch.tensor(r, dtype=torch.float32),
                      "next_observation": torch.as_tensor(np.stack(o2), dtype=torch.float32),
                      "terminated": torch.tensor(term),
                      "discount": torch.tensor(disc, dtype=torch.float32)})
        return torch.as_tensor(next_obs, dtype=torch.float32)
