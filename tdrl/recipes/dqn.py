"""DQN on gymnasium vector envs, with a ``QValueActor`` and ``EGreedyModule``.

One file, top to bottom, in the CleanRL spirit:

1. ``build_qnet`` (:mod:`tdrl.recipes.dqn_agent`, beside ``DQNConfig``): an
   ``MLP`` mapping the observation to one value per action, wrapped in a
   ``QValueActor`` (writes ``"action"``, ``"action_value"`` and
   ``"chosen_action_value"``); exploration is a ``SafeSequential`` of the
   actor and an ``EGreedyModule`` whose epsilon anneals linearly over
   ``exploration_fraction * total_steps`` env steps.
2. ``NStepReturns`` (:mod:`tdrl.recipes.nstep`) + ``ReplayBuffer``: per-env
   n-step transitions (reward = discounted sum of the next n rewards,
   bootstrap discount gamma**n) in a preallocated ``TensorDict`` ring; the
   next observation of an episode cut by the time limit is its true final
   observation, and only real terminations stop the bootstrap.
3. ``DQN.train_step``: every ``train_freq`` env steps, ``gradient_steps``
   updates on uniform minibatches; Huber loss between the chosen action's
   value and ``r + discount * Q_target(s', argmax_a Q(s', a))`` (Double DQN;
   ``max_a Q_target`` without it), gradient clipping, learning rate decayed
   linearly; the target network is copied every ``target_update`` env steps
   (or Polyak-averaged with ``tau < 1``).

Acting uses ``ExplorationType.RANDOM`` (epsilon-greedy), evaluation
``ExplorationType.DETERMINISTIC`` (greedy). Only discrete action spaces.

With ``--workers N`` (Ape-X style, :func:`tdrl.recipes.remote.open_apex_collector`)
the acting moves to N Ray workers, each with its own envs, Q-network copy and
epsilon; ``receive`` puts their transitions through the same n-step and
replay code as ``env_step``, and the Q-network goes out to them every
``--sync-every`` gradient steps.

Examples:
    >>> import gymnasium as gym
    >>> from tdrl.recipes.dqn import DQNConfig, build_qnet
    >>> qnet = build_qnet(DQNConfig(), gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    >>> type(qnet).__name__
    'QValueActor'
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tensordict import TensorDict

from tdrl._compat import clip_grad_norm_, copy_all_, lerp_all_
from tdrl.data import Categorical
from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import DistributionalQValueActor, EGreedyModule, SafeSequential
from tdrl.recipes.blocks import (
    Clock,
    EpisodeStats,
    deterministic_act,
    linear_schedule,
    make_adam,
)
from tdrl.recipes.dqn_agent import (
    ENV_DEFAULTS,
    DQNConfig,
    build_qnet,
    make_act,
    make_policy,
    prepare,
)
from tdrl.recipes.envs import EnvInfo, check_env_step, final_observations
from tdrl.recipes.fastpath import plain_forward
from tdrl.recipes.finite import check_finite, check_params, float_tensors
from tdrl.recipes.frame_replay import FrameReplay, stores_frames
from tdrl.recipes.nstep import NStepReturns
from tdrl.recipes.offpolicy import OffPolicy
from tdrl.recipes.protocol import Recipe
from tdrl.recipes.remote import open_apex_collector

# DQNConfig, ENV_DEFAULTS and the network functions live in dqn_agent, NStepReturns in nstep
__all__ = ["DQN", "DQNConfig", "ENV_DEFAULTS", "NStepReturns", "RECIPE", "build_qnet", "make_act",
           "make_policy", "prepare"]


class DQN(OffPolicy):
    """One DQN run: envs, Q-network, target network, epsilon-greedy explorer, replay buffer.

    ``iterate()`` acts and learns up to the next ``log_every`` boundary;
    ``state_dict()`` captures everything needed to continue exactly (networks,
    optimizer, epsilon, replay buffer, pending n-step transitions, the pickled
    vector env, episode stats).

    Examples:
        >>> import gymnasium as gym
        >>> cfg = DQNConfig(total_steps=400, learning_starts=200, train_freq=64, gradient_steps=2,
        ...                 buffer_size=1000)
        >>> algo = DQN(cfg, EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), 475.0))
        >>> row = algo.iterate()
        >>> algo.global_step, row["updates"], len(algo.buffer) > 350
        (400, 6, True)
        >>> algo.close()
    """

    loss_columns = ["loss", "q_mean", "epsilon", "lr", "updates"]

    def __init__(self, cfg: DQNConfig, env: EnvInfo, clock: Clock | None = None) -> None:
        obs_space, action_space, threshold = env
        super().__init__(cfg, threshold, clock)
        if stores_frames(obs_space):  # stacked Atari frames: each frame stored once
            self.buffer = FrameReplay(cfg.buffer_size, self.device)
        self.qnet = build_qnet(cfg, obs_space, action_space).to(self.device)
        self.target = copy.deepcopy(self.qnet).requires_grad_(False)
        # the learner needs only the action values: the network step of each actor, called on
        # the observation tensor (the actors' greedy/epsilon steps are for acting)
        self.q_values = self.qnet[0].module
        self.target_q_values = self.target[0].module
        # the recipe's own MLP runs as a plain tensor function in the hot paths (a user's
        # --module keeps the module calls); the same parameters either way
        fast = None if cfg.module else plain_forward(self.q_values)
        self.q_fn = fast or self.q_values
        self.target_q_fn = (None if fast is None else plain_forward(self.target_q_values)) or \
            self.target_q_values
        self.fast_act = fast is not None
        self.n_actions = int(action_space.n)
        self.params = list(self.qnet.parameters())
        self.checked = float_tensors(self.qnet)  # what check_phase checks, listed once
        self.target_params = list(self.target.parameters())
        # hard target update: every tensor of the state dict, copied in one multi-tensor call
        self.copy_pairs = (list(self.target.state_dict(keep_vars=True).values()),
                           list(self.qnet.state_dict(keep_vars=True).values()))
        if isinstance(self.qnet, DistributionalQValueActor):  # module=: C51's update instead
            from tdrl.recipes.dqn_distributional import C51Update

            self.train_step = C51Update(self)
        self._act = deterministic_act(self.qnet, self.device)
        self.egreedy = EGreedyModule(
            Categorical(int(action_space.n)),
            eps_init=cfg.eps_init,
            eps_end=cfg.eps_end,
            annealing_num_steps=max(1, int(cfg.exploration_fraction * cfg.total_steps)),
            action_key="action",
        ).to(self.device)
        self.explorer = SafeSequential(self.qnet, self.egreedy)
        self.optimizer = make_adam(self.qnet.parameters(), cfg.lr)
        n_envs = cfg.total_envs  # over all workers with --workers
        self.nstep = NStepReturns(cfg.n_step, cfg.gamma, n_envs) if cfg.n_step > 1 else None
        # --workers: Ape-X actors on Ray stream their transitions in (receive); no local envs
        self.collector = open_apex_collector(cfg, self.qnet, self.explorer, int(action_space.n))
        self.synced_at = 0
        self.grad_norms: list[torch.Tensor] = []  # of the current training phase
        if self.collector is None:
            self.open_envs()
        else:
            self.stats = EpisodeStats(n_envs, threshold)
            self.batches = iter(self.collector)
            self.envs, self.obs = None, torch.empty(0)

    def lr(self) -> float:
        if not self.cfg.anneal_lr:
            return self.cfg.lr
        return linear_schedule(self.cfg.lr, self.global_step, self.cfg.total_steps)

    # -- acting -----------------------------------------------------------------------------
    @torch.no_grad()
    def env_step(self) -> int:
        """One epsilon-greedy vector step; stores the transitions; returns the env steps."""
        n = self.cfg.num_envs
        if self.fast_act:  # what self.explorer does under RANDOM, the same draws
            action = self.q_fn(self.obs).argmax(-1)  # (the first maximum on ties, as max)
            scores = torch.rand((n, self.n_actions), device=self.device) - 0.5
            explore = torch.rand(n, device=self.device) < self.egreedy.eps
            action = torch.where(explore, scores.argmax(-1), action)
        else:
            td = TensorDict({"observation": self.obs}, batch_size=[n], device=self.device)
            with set_exploration_type(ExplorationType.RANDOM):
                action = self.explorer(td)["action"]
        obs, reward, terminated, truncated, info = self.envs.step(action.cpu().numpy())
        self.global_step += n
        done = terminated | truncated
        final = final_observations(info, done) if done.any() else None
        check_env_step(obs, reward, self.global_step, final)
        self.stats.update(reward, done, self.global_step, self.clock(), info)
        next_obs = obs
        if final is not None:  # same-step autoreset: the true last observation is in info
            next_obs = obs.copy()
            next_obs[done] = final
        self.store(self.obs, action, reward, next_obs, terminated, done)
        self.egreedy.step(n)
        self.obs = self._obs_tensor(obs)
        return n

    @torch.no_grad()
    def receive(self) -> int:
        """--workers: one ``[T, N]`` batch of the workers' steps, stored step by step."""
        batch = next(self.batches)  # tdrl.collectors layout, on the CPU
        steps, n = batch.batch_size
        obs, action = batch["observation"], batch["action"]
        nxt = {k: batch["next", k].numpy() for k in ("observation", "reward", "terminated", "done")}
        for t in range(steps):
            self.global_step += n
            check_env_step(nxt["observation"][t], nxt["reward"][t], self.global_step)
            self.stats.update(nxt["reward"][t], nxt["done"][t], self.global_step, self.clock())
            self.store(
                obs[t].to(self.device), action[t], nxt["reward"][t], nxt["observation"][t],
                nxt["terminated"][t], nxt["done"][t],
            )
            self.egreedy.step(n)  # the learner's schedule (a single worker acts with it)
        return steps * n

    def store(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        done: np.ndarray,
    ) -> None:
        """Add one vector step's transitions to the replay buffer (through n-step returns)."""
        n = obs.shape[0]
        if self.nstep is None:
            device = self.device  # a plain mapping: no TensorDict built per env step
            self.buffer.add(
                {
                    "observation": obs,
                    "action": action,
                    "reward": torch.as_tensor(reward, dtype=torch.float32, device=device),
                    "next_observation": self._obs_tensor(next_obs),
                    "terminated": torch.as_tensor(terminated, device=device),
                    "discount": torch.full((n,), self.cfg.gamma, device=device),
                }
            )
        else:
            ready = self.nstep.push(
                obs.cpu().numpy(), action.cpu().numpy(), reward, next_obs, terminated, done
            )
            if ready:
                o, a, r, o2, term, disc = zip(*ready)
                self.buffer.add(
                    {
                        "observation": self._obs_tensor(np.stack(o)),
                        "action": torch.tensor(a, dtype=torch.long, device=self.device),
                        "reward": torch.tensor(r, dtype=torch.float32, device=self.device),
                        "next_observation": self._obs_tensor(np.stack(o2)),
                        "terminated": torch.tensor(term, device=self.device),
                        "discount": torch.tensor(disc, dtype=torch.float32, device=self.device),
                    }
                )

    # -- learning ---------------------------------------------------------------------------
    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One gradient step on a replay minibatch; returns (loss, mean Q) detached."""
        cfg = self.cfg
        batch = self.buffer.sample_tensors(cfg.batch_size)
        obs, next_obs = batch["observation"], batch["next_observation"]
        b = obs.shape[0]
        if cfg.double_dqn:  # one online pass over [obs; next_obs]: Q(s, .) and argmax Q(s', .)
            q_both = self.q_fn(torch.cat([obs, next_obs]))
            q_all = q_both[:b]
            next_action = q_both[b:].detach().argmax(-1, keepdim=True)
        else:
            q_all = self.q_fn(obs)
        with torch.no_grad():
            next_q_target = self.target_q_fn(next_obs)
            if cfg.double_dqn:
                next_q = next_q_target.gather(-1, next_action).squeeze(-1)
            else:
                next_q = next_q_target.max(-1).values
            not_done = (~batch["terminated"]).float()
            target = batch["reward"] + batch["discount"] * not_done * next_q
        q = q_all.gather(-1, batch["action"].unsqueeze(-1)).squeeze(-1)
        loss = F.smooth_l1_loss(q, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.grad_norms.append(clip_grad_norm_(self.params, cfg.max_grad_norm))
        self.optimizer.step()
        self.updates += 1
        if cfg.tau < 1.0:
            lerp_all_(self.target_params, self.params, cfg.tau)
        return loss.detach(), q.detach().mean()

    def iterate(self) -> dict[str, float | None]:
        """Act and learn until the next ``log_every`` boundary; returns the loss columns."""
        cfg = self.cfg
        stop = min(cfg.total_steps, (self.global_step // cfg.log_every + 1) * cfg.log_every)
        losses, qs = [], []
        while self.global_step < stop:
            before = self.global_step
            steps = self.env_step() if self.collector is None else self.receive()
            # the buffer can still be empty here with --learning-starts 0 and n-step returns
            if self.global_step >= cfg.learning_starts and len(self.buffer):
                self.since_train += steps
                while self.since_train >= cfg.train_freq:
                    self.since_train -= cfg.train_freq
                    lr = self.lr()
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    for _ in range(cfg.gradient_steps):
                        loss, q = self.train_step()
                        losses.append(loss)
                        qs.append(q)
                    self.check_phase(losses[-cfg.gradient_steps:])
                if (
                    cfg.tau == 1.0
                    and self.global_step // cfg.target_update > before // cfg.target_update
                ):
                    copy_all_(*self.copy_pairs)  # = target.load_state_dict(qnet.state_dict())
            if self.collector is not None and self.updates - self.synced_at >= cfg.sync_every:
                self.collector.update_policy_weights_()  # one ray.put, read by every worker
                self.synced_at = self.updates
        return {  # None: no update in this chunk (an empty metrics.csv cell)
            "loss": torch.stack(losses).mean().item() if losses else None,
            "q_mean": torch.stack(qs).mean().item() if qs else None,
            # with >= 2 workers each acts with its own Ape-X epsilon, not this schedule
            "epsilon": float(self.egreedy.eps) if cfg.workers < 2 else None,
            "lr": self.lr(),
            "updates": self.updates,
        }

    def check_phase(self, losses: list[torch.Tensor]) -> None:
        """Once per training phase (one sync): its losses, gradient norms, then the weights."""
        norms, self.grad_norms = self.grad_norms, []
        check_finite(self.global_step, loss=torch.stack(losses),
                     **{"gradient (norm)": torch.stack(norms)})
        check_params(self.checked, self.global_step)

    # -- checkpointing (the rest is OffPolicy's) --------------------------------------------
    def checkpointed(self) -> dict[str, Any]:
        return {
            "model": self.qnet,
            "target": self.target,
            "egreedy": self.egreedy,
            "optimizer": self.optimizer,
        }

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["nstep_pending"] = None if self.nstep is None else self.nstep.pending
        if self.collector is not None:  # the workers' envs (the batch in flight is not kept)
            state["envs"] = self.collector.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.collector is not None:
            self.collector.load_state_dict(state["envs"])
            state = {**state, "envs": None}
        super().load_state_dict(state)
        if self.nstep is not None:
            self.nstep.pending = state["nstep_pending"]
            if self.envs_restarted:  # --vec envpool: new games; the pending steps have no next
                self.nstep.pending = [[] for _ in self.nstep.pending]
        if self.collector is not None:
            self.collector.update_policy_weights_()

    def close(self) -> None:
        if self.collector is not None:
            self.collector.shutdown()
        else:
            super().close()


RECIPE = Recipe(
    name="dqn",
    summary="DQN on gymnasium vector envs, with a QValueActor and EGreedyModule.",
    config=DQNConfig,
    action_spaces=("discrete",),
    algorithm=DQN,
    make_act=make_act,
    env_defaults=ENV_DEFAULTS,
    make_policy=make_policy,
    prepare=prepare,
)
