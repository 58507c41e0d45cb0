"""PPO on gymnasium vector envs, with a shared-trunk ``ActorValueOperator``.

One file, top to bottom, in the CleanRL spirit:

1. ``build_agent`` (:mod:`tdrl.recipes.ppo_agent`): trunk ``MLP`` -> ``"hidden"``;
   a ``ProbabilisticActor`` head (``Categorical``/``OneHotCategorical`` logits for discrete actions,
   ``TanhNormal`` via ``NormalParamExtractor`` with the env's bounds for
   continuous ones) and a ``ValueOperator`` head, joined by
   ``ActorValueOperator``.
2. ``PPO.collect``: ``n_steps`` steps of ``num_envs`` envs; each step runs the
   whole operator once under ``ExplorationType.RANDOM`` (action,
   ``sample_log_prob`` and ``state_value`` in one pass). Truncated episodes are
   bootstrapped with the value of their final observation.
3. ``PPO.update``: GAE(lambda), then ``epochs`` passes of shuffled minibatches:
   clipped surrogate on normalized advantages, value MSE, entropy bonus,
   gradient clipping; learning rate and clip range annealed linearly to 0.
   The new log-probabilities come from the policy head's ``get_dist`` (the
   trunk runs once per minibatch and feeds both heads).

With ``--recurrent lstm|gru`` the trunk ends with an LSTM/GRU
(:func:`tdrl.recipes.trunks.trunk_module`) and ``self.memory``
(:mod:`tdrl.recipes.memory`) supplies each step's input (observation, the envs'
recurrent state, ``is_init``), carries the state after each step, and cuts the
rollout into minibatches of whole env sequences that the update replays from
their stored state; without it the same calls are the feed-forward path.

Evaluation acts under ``ExplorationType.DETERMINISTIC``. With ``--normalize-obs`` (the
default on MuJoCo envs) a ``RunningObsNorm`` runs before the trunk: ``collect`` adds each
observation to its statistics as it arrives and stores it normalized; evaluation, checkpoints
and export use the statistics as saved.

Examples:
    >>> import gymnasium as gym
    >>> from tdrl.recipes.ppo import PPOConfig, build_agent
    >>> cfg = PPOConfig()
    >>> parts = build_agent(cfg, gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    >>> type(parts.agent).__name__
    'ActorValueOperator'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from tdrl._compat import clip_grad_norm_
from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import set_recurrent_mode
from tdrl.recipes.advantages import gae
from tdrl.recipes.blocks import Clock, EpisodeStats, linear_schedule, make_adam, obs_tensor
from tdrl.recipes.config import (
    NonFiniteError,
)
from tdrl.recipes.envpool_vec import restart_obs
from tdrl.recipes.envs import (
    EnvInfo,
    check_env_reset,
    check_env_step,
    check_policy_action,
    final_observations,
    is_discrete,
    make_vec_env,
)
from tdrl.recipes.finite import check_finite, check_params
from tdrl.recipes.memory import PolicyAct, make_memory
from tdrl.recipes.pixels import reports_game_score
from tdrl.recipes.ppo_agent import (  # (PPOConfig, ENV_DEFAULTS: re-exported from here)
    ENV_DEFAULTS,
    AgentParts,
    PPOConfig,
    action_to_env,
    build_agent,
    make_act,
    make_policy,
    prepare,
)
from tdrl.recipes.ppo_calls import agent_calls
from tdrl.recipes.protocol import Recipe
from tdrl.recipes.remote import open_collector

__all__ = ["AgentParts", "ENV_DEFAULTS", "PPO", "PPOConfig", "RECIPE", "build_agent", "make_act",
           "make_policy"]


# ----------------------------------------------------------------------------- algorithm
class PPO:
    """One PPO run: envs, operator, optimizer and rollout storage.

    ``iterate()`` collects one rollout and updates; ``state_dict()`` captures
    everything needed to continue exactly (weights, optimizer, the pickled
    vector env and its current observation, episode stats).

    Examples:
        >>> import gymnasium as gym
        >>> cfg = PPOConfig(total_steps=256, epochs=1)
        >>> algo = PPO(cfg, EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), 475.0))
        >>> row = algo.iterate()
        >>> algo.global_step, sorted(row) == sorted(PPO.loss_columns)
        (256, True)
        >>> algo.close()
    """

    loss_columns = [
        "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac", "explained_var", "lr"
    ]

    def __init__(self, cfg: PPOConfig, env: EnvInfo, clock: Clock | None = None) -> None:
        obs_space, action_space, threshold = env
        self.cfg = cfg
        self.clock = clock if clock is not None else Clock()
        self.device = torch.device(cfg.device)
        self.action_space = action_space
        self.discrete = is_discrete(action_space)
        parts = build_agent(cfg, obs_space, action_space)
        self.agent = parts.agent.to(self.device)
        self.common, self.policy, self.value = parts.common, parts.policy, parts.value
        # --normalize-obs: obs_norm runs before the trunk, which reads obs_key; rollouts store
        # the observations as normalized when collected, and the update runs the trunk on them
        self.trunk, self.obs_norm, self.obs_key = parts.trunk, parts.obs_norm, parts.obs_key
        self.log_prob_key = getattr(self.policy, "log_prob_key", "sample_log_prob")
        self.optimizer = make_adam(self.agent.parameters(), cfg.lr, eps=1e-5)
        self.to_env = action_to_env(action_space, cfg)
        # what the operator remembers between steps (--recurrent; nothing otherwise), and how
        # the update replays a rollout (whole env sequences; shuffled single steps otherwise)
        self.memory = make_memory(self.agent, cfg.rnn_seq_len)
        # how the agent is called: its operator, or plain tensor functions for the recipe's
        # own feed-forward categorical agent (tdrl.recipes.ppo_calls)
        self.calls = agent_calls(cfg, parts, self.memory, action_space)
        self.params = list(self.agent.parameters())
        self.act = PolicyAct(self.agent.get_policy_operator(), self.device, self.to_env)
        # Atari: the statistics are whole games' unclipped scores (final_info), not lives
        self.stats = EpisodeStats(cfg.total_envs, threshold,
                                  game_score=reports_game_score(cfg.env) and not cfg.workers)
        self.global_step = 0
        # --workers: rollouts come from Ray workers with copies of the operator (collect_remote)
        keys = ["action", self.log_prob_key, "state_value"]
        self.collector = open_collector(cfg, self.agent, cfg.n_steps, policy_keys=keys,
                                        action_to_env=self.to_env)
        if self.collector is not None:
            self.batches = iter(self.collector)
            return
        self.envs = make_vec_env(cfg.env, cfg.num_envs, vec=cfg.vec)
        obs, _ = self.envs.reset(seed=cfg.seed)
        check_env_reset(obs)
        self.envs.action_space.seed(cfg.seed)
        self.obs = self._observe(obs)

    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return obs_tensor(obs, self.device)  # uint8 frames stay uint8 (the network scales them)

    def _observe(self, obs: np.ndarray) -> torch.Tensor:
        """A new observation from the envs: to the device, and into the running statistics."""
        if self.obs_norm is not None:
            self.obs_norm.update(obs)
        return self._obs_tensor(obs)

    # -- rollout --------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self) -> TensorDict:
        """Run ``n_steps`` vector steps under RANDOM exploration; returns a [T, N] batch."""
        cfg, n_envs, device, calls = self.cfg, self.cfg.num_envs, self.device, self.calls
        keys = (self.obs_key, "action", self.log_prob_key, "state_value", *self.memory.keys)
        store: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        rewards = np.empty((cfg.n_steps, n_envs), dtype=np.float32)
        dones = np.empty((cfg.n_steps, n_envs), dtype=np.float32)
        start = self.global_step
        # a reward that overflows float32 once scaled is reported below, not warned about
        with set_exploration_type(ExplorationType.RANDOM), np.errstate(over="ignore"):
            for t in range(cfg.n_steps):
                # the whole operator once: trunk, sampled action + log-prob, state value
                td = calls.act(self.obs)
                for k in keys:
                    store[k].append(td[k])
                env_action = self.to_env(td["action"])
                check_policy_action(env_action)
                obs, reward, terminated, truncated, info = self.envs.step(env_action)
                self.global_step += n_envs
                done = terminated | truncated
                self.memory.advance(td, done)  # the state after this step; reset where done
                final = final_observations(info, done) if done.any() else None
                check_env_step(obs, reward, self.global_step, final)
                self.stats.update(reward, done, self.global_step, self.clock(), info)
                rewards[t] = reward * cfg.reward_scale
                cut = truncated & ~terminated
                if cut.any():  # bootstrap episodes cut by the time limit from their final obs
                    final = self._obs_tensor(final_observations(info, cut))
                    v = calls.value(final, rows=cut)
                    rewards[t, cut] += cfg.gamma * v.reshape(-1).cpu().numpy()
                dones[t] = done
                self.obs = self._observe(obs)
            last_value = calls.value(self.obs).reshape(-1)
        bad = ~np.isfinite(rewards).all(1)
        if bad.any():  # finite env rewards can overflow float32 once scaled (or bootstrapped)
            t = int(np.flatnonzero(bad)[0])
            raise NonFiniteError(
                f"reward x --reward-scale {cfg.reward_scale:g} (or its bootstrap from the final "
                f"observation): {rewards[t][~np.isfinite(rewards[t])][0]}",
                start + (t + 1) * n_envs,
            )
        batch = TensorDict(
            {k: torch.stack(v) for k, v in store.items()},
            batch_size=[cfg.n_steps, n_envs],
            device=device,
        )
        values = batch["state_value"].reshape(cfg.n_steps, n_envs)
        advantages = self.gae(
            torch.from_numpy(rewards).to(device),
            values,
            torch.from_numpy(dones).to(device),
            last_value,
        )
        # once per rollout: what the policy produced and what the update will learn from
        check_finite(self.global_step, **{"state value": values, "log-probability":
                                          batch[self.log_prob_key], "advantage": advantages})
        batch["advantage"] = advantages
        batch["value_target"] = advantages + values
        return batch

    @torch.no_grad()
    def collect_remote(self) -> TensorDict:
        """The same rollout from the workers' ``[T, N]`` batch (``tdrl.collectors`` layout)."""
        cfg, device = self.cfg, self.device
        cpu = next(self.batches)  # stats and checks read numpy; learning runs on device
        reward, done, next_obs = (cpu["next", k].numpy() for k in ("reward", "done", "observation"))
        n_steps, n_envs = cpu.batch_size
        for t in range(n_steps):
            self.global_step += n_envs
            check_env_step(next_obs[t], reward[t], self.global_step)
            self.stats.update(reward[t], done[t], self.global_step, self.clock())
        batch = cpu.to(device)
        reward, done = batch["next", "reward"], batch["next", "done"]
        rewards = reward * cfg.reward_scale
        cut = batch["next", "truncated"] & ~batch["next", "terminated"]
        if cut.any():  # bootstrap episodes cut by the time limit from their final obs
            final = batch["next", "observation"][cut]
            rewards[cut] += cfg.gamma * self.calls.value(final).reshape(-1)
        last_obs = batch["next", "observation"][-1]  # (ended envs: masked by done in gae)
        last_value = self.calls.value(last_obs).reshape(-1)
        out = batch.select("observation", "action", self.log_prob_key, "state_value")
        if self.obs_norm is not None:  # normalized as the workers did, then into the statistics
            self.obs_norm(out)
            self.obs_norm.update(out["observation"])
        values = out["state_value"].reshape(n_steps, n_envs)
        out["advantage"] = self.gae(rewards, values, done.float(), last_value)
        out["value_target"] = out["advantage"] + values
        return out

    def gae(
        self,
        rewards: torch.Tensor,
        values: torch.Tensor,
        dones: torch.Tensor,
        last_value: torch.Tensor,
    ) -> torch.Tensor:
        """GAE over a [T, N] rollout (``dones[t]`` ends step t): :func:`~tdrl.recipes.advantages.gae`."""
        return gae(rewards, values, dones, last_value, self.cfg.gamma, self.cfg.gae_lambda)

    # -- update ---------------------------------------------------------------------------
    @set_recurrent_mode(True)  # a recurrent trunk replays [sequences, steps] batches
    def update(self, batch: TensorDict) -> dict[str, float]:
        """Clipped-surrogate epochs over the flattened rollout."""
        cfg = self.cfg
        progress = self.global_step / cfg.total_steps
        lr = linear_schedule(cfg.lr, self.global_step, cfg.total_steps) if cfg.anneal_lr else cfg.lr
        clip = cfg.clip * max(0.0, 1.0 - progress) if cfg.anneal_clip else cfg.clip
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        flat = batch.reshape(-1)
        n = flat.shape[0]
        obs_all = flat[self.obs_key]
        act_all = flat["action"]
        old_lp_all = flat[self.log_prob_key]
        adv_all = flat["advantage"]
        target_all = flat["value_target"]
        score, params = self.calls.score, self.params
        if cfg.norm_adv and n > 1:
            adv_full = (adv_all - adv_all.mean()) / (adv_all.std() + 1e-8)
        else:
            adv_full = adv_all
        # a rollout is [T, N] (time-major); a flat batch of steps counts as one env's
        n_steps, n_envs = batch.batch_size if batch.ndim == 2 else (n, 1)
        # logged as SB3 and CleanRL do, without another pass over the rollout: the explained
        # variance of the values the rollout was collected with, and (below) the entropy and
        # losses of the last epoch's minibatches
        var = target_all.var()
        residual = target_all - flat["state_value"].reshape(target_all.shape)
        explained = 1 - residual.var() / var if var > 0 else torch.tensor(0.0)
        logged: list[torch.Tensor] = []
        grad_norms: list[torch.Tensor] = []
        for epoch in range(cfg.epochs):
            # shuffled steps, or whole env sequences (--recurrent); None: the whole rollout
            minibatches = self.memory.minibatches(n_steps, n_envs, cfg.batch_size, self.device)
            for idx in minibatches:
                if idx is None:
                    obs, action, old_lp = obs_all, act_all, old_lp_all
                    adv, target = adv_full, target_all
                else:
                    obs, action, old_lp = obs_all[idx], act_all[idx], old_lp_all[idx]
                    adv, target = adv_all[idx], target_all[idx]
                    if cfg.norm_adv and adv.shape[0] > 1:
                        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                log_prob, entropy, value = score(flat, idx, obs, action)
                last_epoch = epoch == cfg.epochs - 1
                if cfg.ent_coef > 0:
                    ent = entropy()
                elif last_epoch:  # for the log only
                    with torch.no_grad():
                        ent = entropy()
                log_ratio = log_prob - old_lp
                ratio = log_ratio.exp()
                value = value.reshape(target.shape)
                policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()
                value_loss = (target - value).pow(2).mean()
                loss = policy_loss + cfg.vf_coef * value_loss
                if cfg.ent_coef > 0:
                    loss = loss - cfg.ent_coef * ent.mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norms.append(clip_grad_norm_(params, cfg.max_grad_norm))
                self.optimizer.step()
                if last_epoch:  # log the last epoch's minibatches
                    with torch.no_grad():
                        kl = ((ratio - 1) - log_ratio).mean()
                        clipped = ((ratio - 1).abs() > clip).float().mean()
                        logged.append(torch.stack([policy_loss, value_loss, kl, clipped,
                                                   ent.mean()]))
        # once per update: one sync for the gradients' norms and one for the weights
        check_finite(self.global_step, **{"gradient (norm)": torch.stack(grad_norms)})
        check_params(self.agent, self.global_step)
        policy_loss, value_loss, kl, clip_frac, entropy = torch.stack(logged).mean(0).tolist()
        return {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "approx_kl": kl,
            "clip_frac": clip_frac,
            "explained_var": float(explained),
            "lr": lr,
        }

    def iterate(self) -> dict[str, float]:
        """One rollout + one update; returns the loss columns of ``metrics.csv``."""
        if self.collector is None:
            return self.update(self.collect())
        losses = self.update(self.collect_remote())
        self.collector.update_policy_weights_()  # one ray.put, read by every worker
        return losses

    # -- checkpointing --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            # pickled with the checkpoint: resuming continues the episodes
            "envs": self.envs if self.collector is None else self.collector.state_dict(),
            "obs": self.obs.cpu() if self.collector is None else None,
            "stats": self.stats.state_dict(),
            "global_step": self.global_step,
            "memory": self.memory.state_dict(),  # the envs' recurrent state (--recurrent)
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.collector is not None:
            self.collector.load_state_dict(state["envs"])
            self.collector.update_policy_weights_()
        else:
            self.envs.close()
            self.envs = state["envs"]
            self.obs = state["obs"].to(self.device)
        self.stats.load_state_dict(state["stats"])
        self.global_step = int(state["global_step"])
        self.memory.load_state_dict(state.get("memory", {}))
        fresh = restart_obs(self.envs) if self.collector is None else None
        if fresh is not None:  # --vec envpool: new games (envpool cannot save its emulators)
            self.obs = self._obs_tensor(fresh)
            self.memory.reset()

    def close(self) -> None:
        if self.collector is not None:
            self.collector.shutdown()
        else:
            self.envs.close()


RECIPE = Recipe(
    name="ppo",
    summary="PPO on gymnasium vector envs, with a shared-trunk ActorValueOperator.",
    config=PPOConfig,
    action_spaces=("discrete", "box"),
    algorithm=PPO,
    make_act=make_act,
    env_defaults=ENV_DEFAULTS,
    make_policy=make_policy,
    prepare=prepare,
)
