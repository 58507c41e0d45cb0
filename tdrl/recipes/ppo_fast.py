"""PPO's rollout and update for the recipe's own feed-forward categorical agent, on tensors.

When ``tdrl train ppo`` built the network itself (an MLP trunk, linear or MLP heads, a
``Categorical`` policy; no ``--module``), :func:`fast_nets` turns the trunk and both heads
into plain tensor functions (:func:`tdrl.recipes.fastpath.plain_forward`) over the
operator's own parameters. :func:`collect` and :func:`update` are then ``PPO.collect`` and
``PPO.update`` step for step (the same draws from the torch RNG, the same checks, stats,
bootstrap, GAE, losses, clipping, schedules and logged values) without a ``TensorDict``
or a distribution object per step: the categorical log-probabilities are the normalized
logits + ``gather`` and the draw is ``multinomial`` on their softmax, the very ops of
``torch.distributions.Categorical`` (a seeded run is bit for bit the operator path's). Any other agent (user modules, continuous or
one-hot heads, observation normalization for the rollout, recurrent trunks) keeps the
operator path in :mod:`tdrl.recipes.ppo`; ``tests/test_fastpath.py`` checks both agree.

Examples:
    >>> import gymnasium as gym
    >>> from tdrl.recipes.envs import EnvInfo
    >>> from tdrl.recipes.ppo import PPO, PPOConfig
    >>> algo = PPO(PPOConfig(total_steps=256, epochs=1),
    ...            EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), None))
    >>> algo.fast is not None
    True
    >>> batch = collect(algo)
    >>> batch.batch_size, sorted(update(algo, batch))[:2]
    (torch.Size([32, 8]), ['approx_kl', 'clip_frac'])
    >>> algo.close()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from tensordict import TensorDict

from tdrl._compat import clip_grad_norm_
from tdrl.recipes.blocks import linear_schedule
from tdrl.recipes.config import NonFiniteError
from tdrl.recipes.envs import check_env_step, check_policy_action, final_observations, is_discrete
from tdrl.recipes.fastpath import plain_forward
from tdrl.recipes.finite import check_finite, check_params

__all__ = ["FastNets", "collect", "fast_nets", "update"]

Fn = Callable[[torch.Tensor], torch.Tensor]


class FastNets(NamedTuple):
    """The agent's networks as tensor functions, and what they stand for."""

    trunk: Fn  # observation (as the trunk reads it) -> hidden
    logits: Fn  # hidden -> action logits
    value: Fn  # hidden -> state value [B, 1]
    params: list[torch.Tensor]  # every parameter of the operator (clipping)
    policy: Any  # the policy operator they compute (PPO.policy, checked before use)
    collect: bool  # the rollout may use them too (no observation normalization before the trunk)


def fast_nets(cfg: Any, parts: Any, action_space: Any) -> FastNets | None:
    """:class:`FastNets` for the recipe's own categorical agent, else None.

    Examples:
        >>> import gymnasium as gym
        >>> from tdrl.recipes.ppo import PPOConfig, build_agent
        >>> spaces = gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2)
        >>> fast_nets(PPOConfig(), build_agent(PPOConfig(), *spaces), spaces[1]) is not None
        True
        >>> cfg = PPOConfig(discrete_dist="onehot")
        >>> fast_nets(cfg, build_agent(cfg, *spaces), spaces[1]) is None
        True
    """
    if getattr(cfg, "module", "") or not is_discrete(action_space):
        return None
    if cfg.discrete_dist != "categorical":
        return None
    try:
        nets = (parts.trunk.module, parts.policy.module[0].module, parts.value.module)
    except (AttributeError, IndexError, TypeError):
        return None
    fns = [plain_forward(net) for net in nets]
    if any(fn is None for fn in fns):
        return None
    return FastNets(*fns, list(parts.agent.parameters()), parts.policy, parts.obs_norm is None)


@torch.no_grad()
def collect(algo: Any) -> TensorDict:
    """``PPO.collect`` on the fast nets: ``n_steps`` vector steps; returns the [T, N] batch."""
    cfg, n_envs, device, fast = algo.cfg, algo.cfg.num_envs, algo.device, algo.fast
    trunk, head, value_fn = fast.trunk, fast.logits, fast.value
    obs_l, act_l, lp_l, val_l = [], [], [], []
    rewards = np.empty((cfg.n_steps, n_envs), dtype=np.float32)
    dones = np.empty((cfg.n_steps, n_envs), dtype=np.float32)
    start = algo.global_step
    envs, stats, clock, to_env = algo.envs, algo.stats, algo.clock, algo.to_env
    obs_t = algo.obs
    with np.errstate(over="ignore"):  # an overflowing scaled reward is reported below
        for t in range(cfg.n_steps):
            hidden = trunk(obs_t)
            logp = _normalized(head(hidden))
            action = torch.multinomial(torch.softmax(logp, -1), 1, True)  # Categorical.sample
            obs_l.append(obs_t)
            act_l.append(action.squeeze(-1))
            lp_l.append(logp.gather(-1, action).squeeze(-1))
            val_l.append(value_fn(hidden))
            env_action = to_env(act_l[-1])
            check_policy_action(env_action)
            obs, reward, terminated, truncated, info = envs.step(env_action)
            algo.global_step += n_envs
            done = terminated | truncated
            final = final_observations(info, done) if done.any() else None
            check_env_step(obs, reward, algo.global_step, final)
            stats.update(reward, done, algo.global_step, clock())
            rewards[t] = reward * cfg.reward_scale
            cut = truncated & ~terminated
            if cut.any():  # bootstrap episodes cut by the time limit from their final obs
                final = algo._obs_tensor(final_observations(info, cut))
                rewards[t, cut] += cfg.gamma * value_fn(trunk(final)).reshape(-1).cpu().numpy()
            dones[t] = done
            obs_t = algo._obs_tensor(obs)
        algo.obs = obs_t
        last_value = value_fn(trunk(obs_t)).reshape(-1)
    bad = ~np.isfinite(rewards).all(1)
    if bad.any():  # finite env rewards can overflow float32 once scaled (or bootstrapped)
        t = int(np.flatnonzero(bad)[0])
        raise NonFiniteError(
            f"reward x --reward-scale {cfg.reward_scale:g} (or its bootstrap from the final "
            f"observation): {rewards[t][~np.isfinite(rewards[t])][0]}",
            start + (t + 1) * n_envs,
        )
    state_value = torch.stack(val_l)
    values = state_value.reshape(cfg.n_steps, n_envs)
    advantages = algo.gae(
        torch.from_numpy(rewards).to(device), values, torch.from_numpy(dones).to(device),
        last_value,
    )
    log_prob = torch.stack(lp_l)
    check_finite(algo.global_step, **{"state value": values, "log-probability": log_prob,
                                      "advantage": advantages})
    return TensorDict(
        {
            algo.obs_key: torch.stack(obs_l),
            "action": torch.stack(act_l),
            algo.log_prob_key: log_prob,
            "state_value": state_value,
            "advantage": advantages,
            "value_target": advantages + values,
        },
        batch_size=[cfg.n_steps, n_envs],
        device=device,
    )


def update(algo: Any, batch: TensorDict) -> dict[str, float]:
    """``PPO.update`` on the fast nets: clipped-surrogate epochs over the flattened rollout."""
    cfg, fast = algo.cfg, algo.fast
    trunk, head, value_fn, params = fast.trunk, fast.logits, fast.value, fast.params
    progress = algo.global_step / cfg.total_steps
    lr = linear_schedule(cfg.lr, algo.global_step, cfg.total_steps) if cfg.anneal_lr else cfg.lr
    clip = cfg.clip * max(0.0, 1.0 - progress) if cfg.anneal_clip else cfg.clip
    optimizer = algo.optimizer
    for group in optimizer.param_groups:
        group["lr"] = lr
    flat = batch.reshape(-1)
    n = flat.shape[0]
    obs_all, act_all = flat.get(algo.obs_key), flat.get("action").unsqueeze(-1)
    old_lp_all, adv_all = flat.get(algo.log_prob_key), flat.get("advantage")
    target_all = flat.get("value_target")
    norm_adv = cfg.norm_adv
    if norm_adv and n > 1:
        adv_full = (adv_all - adv_all.mean()) / (adv_all.std() + 1e-8)
    else:
        adv_full = adv_all
    whole = cfg.batch_size >= n  # one minibatch per epoch: the whole rollout, no shuffling
    ent_coef, vf_coef, max_norm = cfg.ent_coef, cfg.vf_coef, cfg.max_grad_norm
    logged: list[torch.Tensor] = []
    grad_norms: list[torch.Tensor] = []
    for epoch in range(cfg.epochs):
        if whole:
            minibatches: list[torch.Tensor | None] = [None]
        else:
            perm = torch.randperm(n, device=algo.device)
            minibatches = [perm[i : i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]
        for idx in minibatches:
            if idx is None:
                obs, action, old_lp = obs_all, act_all, old_lp_all
                adv, target = adv_full, target_all
            else:
                obs, action, old_lp = obs_all[idx], act_all[idx], old_lp_all[idx]
                adv, target = adv_all[idx], target_all[idx]
                if norm_adv and adv.shape[0] > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            hidden = trunk(obs)
            logp = _normalized(head(hidden))
            log_ratio = logp.gather(-1, action).squeeze(-1) - old_lp
            ratio = log_ratio.exp()
            value = value_fn(hidden).reshape(-1)
            policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()
            value_loss = (target - value).pow(2).mean()
            loss = policy_loss + vf_coef * value_loss
            if ent_coef > 0:
                loss = loss - ent_coef * _entropy(logp).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norms.append(clip_grad_norm_(params, max_norm))
            optimizer.step()
            if epoch == cfg.epochs - 1:  # log the last epoch's minibatches
                with torch.no_grad():
                    kl = ((ratio - 1) - log_ratio).mean()
                    clipped = ((ratio - 1).abs() > clip).float().mean()
                    logged.append(torch.stack([policy_loss, value_loss, kl, clipped]))
    # once per update: one sync for the gradients' norms and one for the weights
    check_finite(algo.global_step, **{"gradient (norm)": torch.stack(grad_norms)})
    check_params(algo.agent, algo.global_step)
    with torch.no_grad():
        hidden = trunk(obs_all)
        entropy = _entropy(_normalized(head(hidden))).mean()
        values = value_fn(hidden).reshape(-1)
        var = target_all.var()
        explained = 1 - (target_all - values).var() / var if var > 0 else torch.tensor(0.0)
    policy_loss, value_loss, kl, clip_frac = torch.stack(logged).mean(0).tolist()
    return {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": float(entropy),
        "approx_kl": kl,
        "clip_frac": clip_frac,
        "explained_var": float(explained),
        "lr": lr,
    }


def _normalized(logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities from logits, by the very ops ``torch.distributions.Categorical`` uses
    (``logits - logsumexp``, not ``log_softmax``: bit for bit the same rollouts and updates)."""
    return logits - logits.logsumexp(dim=-1, keepdim=True)


def _entropy(logp: torch.Tensor) -> torch.Tensor:
    """``Categorical.entropy`` from normalized logits (``-inf`` entries contribute 0)."""
    clamped = logp.clamp(min=torch.finfo(logp.dtype).min)
    return -(clamped * torch.softmax(logp, -1)).sum(-1)
