"""Equality checks for ``benchmarks/floor.py``: each hand-written update against tdrl's own.

Each check copies a tdrl algorithm's weights into its hand-written twin
(:mod:`ppo_by_hand`, :mod:`dqn_by_hand`, :mod:`sac_by_hand`), runs one update
of both on the same batch from the same torch RNG state (the same minibatch
indices and noise), and compares the losses and every parameter after the
optimizer step. It raises ``AssertionError`` naming the first mismatch, and
returns the largest absolute difference found, so a timing is only reported
for an update that does the same math.

    >>> from tdrl.recipes.envs import probe_env
    >>> algo = build("sac", "Pendulum-v1", total_steps=64, learning_starts=0, batch_size=8,
    ...              hidden=(16, 16))
    >>> fill(algo, 16)
    >>> check_sac(algo) < 1e-4
    True
    >>> algo.close()
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from dqn_by_hand import HandDQN
from ppo_by_hand import HandPPO
from sac_by_hand import HandSAC

from tdrl.recipes import get_recipe
from tdrl.recipes.config import resolve_config
from tdrl.recipes.envs import probe_env
from tdrl.recipes.rng import seed_everything

RTOL, ATOL = 1e-5, 1e-6


def build(algo: str, env_id: str, seed: int = 0, **overrides: Any) -> Any:
    """A ``tdrl train ALGO`` algorithm object with the recipe's defaults for ``env_id``."""
    env = probe_env(env_id)
    recipe = get_recipe(algo)
    explicit = {"env": env_id, "seed": seed, "threads": 1, **overrides}
    cfg = resolve_config(recipe.config, explicit, recipe.defaults_for(env_id, env.action_space))
    cfg.validate()
    seed_everything(seed)
    return recipe.algorithm(cfg, env, time.perf_counter)


def fill(algo: Any, steps: int) -> None:
    """Off-policy algorithms: act (no learning) until ``steps`` env steps are in the buffer."""
    while len(algo.buffer) < steps:
        algo.env_step()


def _compare(name: str, tdrl: list[torch.Tensor], hand: list[torch.Tensor],
             rtol: float = RTOL, atol: float = ATOL) -> float:
    if len(tdrl) != len(hand):
        raise AssertionError(f"{name}: {len(tdrl)} tdrl tensors against {len(hand)} by hand")
    worst = 0.0
    for i, (a, b) in enumerate(zip(tdrl, hand)):
        a, b = a.detach().reshape(-1), b.detach().reshape(-1)
        if a.shape != b.shape:
            raise AssertionError(f"{name}[{i}]: shape {tuple(a.shape)} vs {tuple(b.shape)}")
        diff = float((a - b).abs().max()) if a.numel() else 0.0
        worst = max(worst, diff)
        if not torch.allclose(a, b, rtol=rtol, atol=atol):
            raise AssertionError(f"{name}[{i}]: max abs difference {diff:.3g} "
                                 f"(rtol {rtol}, atol {atol})")
    return worst


def ppo_flat(batch: Any) -> dict[str, torch.Tensor]:
    """A ``PPO.collect`` batch as the flat tensor dict :meth:`HandPPO.update` takes."""
    keys = ("observation", "action", "sample_log_prob", "advantage", "value_target", "state_value")
    return {k: batch[k].reshape(batch.numel(), *batch[k].shape[2:]) for k in keys}


def ppo_params(algo: Any) -> list[torch.Tensor]:
    """tdrl's PPO parameters in :class:`HandPPO`'s order (trunk, policy head, value head)."""
    return [t for part in (algo.trunk, algo.policy, algo.value) for m in part.modules()
            if isinstance(m, torch.nn.Linear) for t in (m.weight, m.bias)]


def check_ppo(algo: Any, atol: float = ATOL) -> float:
    """One ``PPO.update`` (all its epochs) against :meth:`HandPPO.update` on one rollout."""
    batch = algo.collect()
    hand = HandPPO.from_tdrl(algo)
    progress = algo.global_step / algo.cfg.total_steps
    rng = torch.get_rng_state()
    row_t = algo.update(batch)
    torch.set_rng_state(rng)  # the same minibatch permutations
    row_h = hand.update(ppo_flat(batch), progress)
    keys = sorted(row_t)
    worst = _compare("ppo logged " + ",".join(keys), [torch.tensor([row_t[k]]) for k in keys],
                     [torch.tensor([row_h[k]]) for k in keys], rtol=1e-4, atol=atol)
    return max(worst, _compare("ppo parameter", ppo_params(algo), hand.params, atol=atol))


def check_ppo_collect(algo: Any) -> float:
    """``PPO.collect`` against :meth:`HandPPO.collect`: same env seed and RNG, same rollout.

    ``algo`` must be fresh (its envs just reset with ``cfg.seed``): the hand-written loop
    steps a new vector env reset with the same seed.
    """
    from tdrl.recipes.envs import make_vec_env

    cfg = algo.cfg
    hand = HandPPO.from_tdrl(algo)
    envs = make_vec_env(cfg.env, cfg.num_envs)
    obs = torch.as_tensor(envs.reset(seed=cfg.seed)[0], dtype=torch.float32)
    rng = torch.get_rng_state()
    batch = ppo_flat(algo.collect())
    torch.set_rng_state(rng)
    mine, _ = hand.collect(envs, obs, cfg.n_steps, np.zeros(cfg.num_envs, dtype=np.float32))
    envs.close()
    keys = sorted(batch)
    return _compare("ppo rollout " + ",".join(keys), [batch[k] for k in keys],
                    [mine[k] for k in keys])


def check_dqn(algo: Any) -> float:
    """One ``DQN.train_step`` against :meth:`HandDQN.train_step` (same minibatch indices)."""
    hand = HandDQN.from_tdrl(algo)
    rng = torch.get_rng_state()
    loss_t, q_t = algo.train_step()
    torch.set_rng_state(rng)
    loss_h, q_h = hand.train_step()
    worst = _compare("dqn loss, mean Q", [loss_t, q_t], [loss_h, q_h])
    params = [t for m in algo.q_values.modules() if isinstance(m, torch.nn.Linear)
              for t in (m.weight, m.bias)]
    return max(worst, _compare("dqn parameter", params, hand.params))


def sac_params(algo: Any) -> list[torch.Tensor]:
    """tdrl's SAC actor, both critics (per critic, ``F.linear`` layout), targets and log-alpha."""
    parts = algo.parts
    actor = [t for m in parts.act_net.modules() if isinstance(m, torch.nn.Linear)
             for t in (m.weight, m.bias)]

    def split(twin: Any) -> list[torch.Tensor]:
        return [t[q] for q in range(twin.num_q) for w, b in zip(twin.weights, twin.biases)
                for t in (w.transpose(1, 2), b.squeeze(1))]

    target = next(m for m in algo.target_agent.modules() if hasattr(m, "num_q"))
    return actor + split(parts.twin) + split(target) + [algo.log_alpha]


def check_sac(algo: Any) -> float:
    """One ``SAC.update`` against :meth:`HandSAC.update` (same minibatch, same noise)."""
    hand = HandSAC.from_tdrl(algo)
    rng = torch.get_rng_state()
    logged = algo.update()  # critic loss, actor loss, alpha, entropy, mean Q
    torch.set_rng_state(rng)
    batch = algo.buffer.sample(algo.cfg.batch_size)
    critic_loss, actor_loss = hand.update({k: batch[k] for k in batch.keys()})
    worst = _compare("sac critic/actor loss", list(logged[:2]), [critic_loss, actor_loss])
    hand_params = hand.actor + [p for q in hand.critics for p in q] + \
        [p for q in hand.targets for p in q] + [hand.log_alpha]
    return max(worst, _compare("sac parameter", sac_params(algo), hand_params))
