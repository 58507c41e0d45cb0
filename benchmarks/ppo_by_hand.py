"""PPO's rollout and update written by hand in plain torch: the floor for ``tdrl train ppo``.

No TensorDict, no distribution class, no modules: the shared tanh trunk and
both heads are ``F.linear`` calls on bare weight tensors, the Categorical
head is ``log_softmax`` + ``gather`` (sampling with ``multinomial``, as
``torch.distributions.Categorical`` does), the gradient clip is
``_foreach_norm`` + ``_foreach_mul_``. :meth:`HandPPO.update` is
:meth:`tdrl.recipes.ppo.PPO.update` step for step (advantage normalisation,
``epochs`` clipped-surrogate steps on the whole rollout or shuffled
minibatches, value MSE, one fused Adam, learning-rate and clip annealing, the
same logged values); :meth:`HandPPO.collect` is ``PPO.collect`` (sample,
log-prob and value in one pass, env step, finiteness check, episode returns,
time-limit bootstrap, GAE). ``benchmarks/floor.py`` checks both against tdrl
and times them side by side.

    >>> import torch
    >>> ppo = HandPPO(obs_dim=4, n_actions=2, hidden=(8, 8), epochs=2)
    >>> batch = {"observation": torch.randn(16, 4), "action": torch.randint(0, 2, (16,)),
    ...          "sample_log_prob": torch.full((16,), -0.69), "advantage": torch.randn(16),
    ...          "value_target": torch.randn(16), "state_value": torch.randn(16)}
    >>> row = ppo.update(batch, progress=0.5)
    >>> sorted(row)[:3], row["lr"]
    (['approx_kl', 'clip_frac', 'entropy'], 0.0005)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class HandPPO:
    """Trunk, policy and value heads as bare tensors, one fused Adam, PPO's update and rollout."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: tuple = (64, 64),
        lr: float = 1e-3,
        epochs: int = 20,
        batch_size: int = 256,
        clip: float = 0.2,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        gamma: float = 0.98,
        gae_lambda: float = 0.8,
        reward_scale: float = 0.1,
        anneal: bool = True,
    ) -> None:
        sizes = [obs_dim, *hidden]
        self.params: list[torch.Tensor] = []
        for fan_in, fan_out in [*zip(sizes[:-1], sizes[1:]), (sizes[-1], n_actions),
                                (sizes[-1], 1)]:
            bound = 1.0 / math.sqrt(fan_in)
            self.params.append(torch.empty(fan_out, fan_in).uniform_(-bound, bound))
            self.params.append(torch.zeros(fan_out))
        for p in self.params:
            p.requires_grad_()
        self.n_trunk = 2 * len(hidden)
        self.lr, self.epochs, self.batch_size, self.clip = lr, epochs, batch_size, clip
        self.vf_coef, self.max_grad_norm, self.anneal = vf_coef, max_grad_norm, anneal
        self.gamma, self.gae_lambda, self.reward_scale = gamma, gae_lambda, reward_scale
        self.optimizer = torch.optim.Adam(self.params, lr=lr, eps=1e-5, fused=True)

    @classmethod
    def from_tdrl(cls, algo: Any) -> HandPPO:
        """The same networks and settings as a ``tdrl.recipes.ppo.PPO`` (weights copied)."""
        cfg = algo.cfg
        hand = cls(1, 1, tuple(cfg.hidden), cfg.lr, cfg.epochs, cfg.batch_size, cfg.clip,
                   cfg.vf_coef, cfg.max_grad_norm, cfg.gamma, cfg.gae_lambda, cfg.reward_scale,
                   cfg.anneal_lr and cfg.anneal_clip)
        linears = [m for part in (algo.trunk, algo.policy, algo.value) for m in part.modules()
                   if isinstance(m, torch.nn.Linear)]
        hand.params = [t.detach().clone().requires_grad_() for m in linears
                       for t in (m.weight, m.bias)]
        hand.optimizer = torch.optim.Adam(hand.params, lr=cfg.lr, eps=1e-5, fused=True)
        return hand

    def trunk(self, obs: torch.Tensor) -> torch.Tensor:
        x, p = obs, self.params
        for i in range(0, self.n_trunk, 2):
            x = torch.tanh(F.linear(x, p[i], p[i + 1]))
        return x

    def heads(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log-probabilities [B, n], value [B])`` from the trunk's output."""
        p, k = self.params, self.n_trunk
        logp = F.linear(hidden, p[k], p[k + 1]).log_softmax(-1)
        return logp, F.linear(hidden, p[k + 2], p[k + 3]).squeeze(-1)

    def _clip_grads(self) -> None:
        grads = [p.grad for p in self.params]
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        torch._foreach_mul_(grads, (self.max_grad_norm / (total + 1e-6)).clamp_(max=1.0))

    def update(self, batch: dict, progress: float) -> dict[str, float]:
        """``PPO.update`` on a flat rollout (``progress`` = global_step / total_steps)."""
        frac = max(0.0, 1.0 - progress) if self.anneal else 1.0
        lr, clip = self.lr * frac, self.clip * frac
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        obs_all, act_all = batch["observation"], batch["action"].unsqueeze(-1)
        old_all, adv_all, target_all = batch["sample_log_prob"], batch["advantage"], \
            batch["value_target"]
        n = obs_all.shape[0]
        adv_full = (adv_all - adv_all.mean()) / (adv_all.std() + 1e-8)
        var = target_all.var()  # the rollout's own values against the targets
        values = batch["state_value"].reshape(target_all.shape)
        explained = 1 - (target_all - values).var() / var if var > 0 else \
            torch.tensor(0.0)
        logged = []
        for epoch in range(self.epochs):
            if self.batch_size >= n:
                chunks = [None]
            else:
                perm = torch.randperm(n)
                chunks = [perm[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
            for idx in chunks:
                if idx is None:
                    obs, action, old, adv, target = obs_all, act_all, old_all, adv_full, target_all
                else:
                    obs, action, old = obs_all[idx], act_all[idx], old_all[idx]
                    adv, target = adv_all[idx], target_all[idx]
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                logp, value = self.heads(self.trunk(obs))
                log_ratio = logp.gather(-1, action).squeeze(-1) - old
                ratio = log_ratio.exp()
                policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()
                value_loss = (target - value).pow(2).mean()
                self.optimizer.zero_grad(set_to_none=True)
                (policy_loss + self.vf_coef * value_loss).backward()
                self._clip_grads()
                self.optimizer.step()
                if epoch == self.epochs - 1:
                    with torch.no_grad():
                        kl = ((ratio - 1) - log_ratio).mean()
                        clipped = ((ratio - 1).abs() > clip).float().mean()
                        entropy = -(logp.exp() * logp).sum(-1).mean()
                        logged.append(torch.stack([policy_loss, value_loss, kl, clipped,
                                                   entropy]))
        policy_loss, value_loss, kl, clip_frac, entropy = torch.stack(logged).mean(0).tolist()
        return {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy,
                "approx_kl": kl, "clip_frac": clip_frac, "explained_var": float(explained),
                "lr": lr}

    @torch.no_grad()
    def collect(self, envs: Any, obs: torch.Tensor, n_steps: int,
                returns: np.ndarray) -> tuple[dict, torch.Tensor]:
        """``n_steps`` vector steps of ``envs`` (same-step autoreset) from ``obs``.

        ``returns`` holds each env's running episode return (updated in place).
        Returns the flat rollout (``[n_steps * num_envs]`` per key, advantages
        and value targets included) and the observation to continue from.
        """
        n_envs = obs.shape[0]
        obs_buf = torch.empty(n_steps, *obs.shape)
        act_buf = torch.empty(n_steps, n_envs, dtype=torch.long)
        lp_buf, val_buf = torch.empty(n_steps, n_envs), torch.empty(n_steps, n_envs)
        rewards = np.empty((n_steps, n_envs), dtype=np.float32)
        dones = np.empty((n_steps, n_envs), dtype=np.float32)
        for t in range(n_steps):
            logp, value = self.heads(self.trunk(obs))
            action = torch.multinomial(logp.exp(), 1, True)
            obs_buf[t], val_buf[t] = obs, value
            act_buf[t], lp_buf[t] = action.squeeze(-1), logp.gather(-1, action).squeeze(-1)
            next_obs, reward, terminated, truncated, info = envs.step(action.squeeze(-1).numpy())
            if not (np.isfinite(next_obs).all() and np.isfinite(reward).all()):
                raise FloatingPointError(f"non-finite observation or reward at step {t}")
            done = terminated | truncated
            returns += reward
            returns[done] = 0.0
            rewards[t] = reward * self.reward_scale
            cut = truncated & ~terminated
            if cut.any():
                final = np.stack([info["final_obs"][i] for i in np.flatnonzero(cut)])
                v = self.heads(self.trunk(torch.as_tensor(final, dtype=torch.float32)))[1]
                rewards[t, cut] += self.gamma * v.numpy()
            dones[t] = done
            obs = torch.as_tensor(next_obs, dtype=torch.float32)
        last_value = self.heads(self.trunk(obs))[1]
        rew, not_done = torch.from_numpy(rewards), 1.0 - torch.from_numpy(dones)
        adv = torch.empty(n_steps, n_envs)
        next_adv, next_value = torch.zeros(n_envs), last_value
        for t in range(n_steps - 1, -1, -1):
            delta = rew[t] + self.gamma * next_value * not_done[t] - val_buf[t]
            next_adv = delta + self.gamma * self.gae_lambda * not_done[t] * next_adv
            adv[t] = next_adv
            next_value = val_buf[t]
        batch = {"observation": obs_buf, "action": act_buf, "sample_log_prob": lp_buf,
                 "advantage": adv, "value_target": adv + val_buf, "state_value": val_buf}
        return {k: v.reshape(n_steps * n_envs, *v.shape[2:]) for k, v in batch.items()}, obs
