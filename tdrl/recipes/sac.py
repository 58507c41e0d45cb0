"""SAC on gymnasium vector envs: a ``TanhNormal`` actor and twin ``Q(s, a)`` critics.

One file, top to bottom, in the CleanRL spirit:

1. ``build_agent``: a ``ProbabilisticActor`` (``TanhNormal`` on the env's
   bounds, loc and scale from a ``NormalParamExtractor``) and a
   ``ValueOperator`` over ``observation`` and ``action`` whose network,
   :class:`TwinQ`, holds both critics as stacked weights (one batched matmul
   per layer for the pair). By default the two are separate networks joined by
   ``ActorCriticWrapper``; ``--shared-trunk`` puts one trunk under both heads
   in an ``ActorCriticOperator``, and the update trains through its
   ``get_policy_operator()`` and ``get_qvalue_operator()`` (trunk + critic on
   the *replayed* action).
2. ``ReplayBuffer``: a ring of plain tensors; episodes cut by the time limit
   store their true final observation and keep bootstrapping.
3. ``SAC.update``: one gradient step per env step (SB3's defaults). The actor
   runs once on ``[obs; next_obs]``; the critic target is
   ``r + gamma * (min Q_target(s', a') - alpha * log pi(a'|s'))``; the actor
   loss ``alpha * log pi(a|s) - min Q(s, a)`` reads the critics through
   detached weights; the temperature ``alpha`` is tuned towards a target
   entropy of ``-dim(A)`` (in the ``[-1, 1]``-normalized action space, as
   SB3). The three losses are summed and stepped by *one* fused Adam (each
   parameter only receives its own loss's gradient, so this equals three Adam
   steps, except that the actor reads the critics from before this step's
   update, where SB3 reads them after); target critics are Polyak-averaged.

With ``module=`` (``--module``) the networks are the user's, completed into
twin critics and checked before anything is written: :mod:`tdrl.recipes.sac_user`
states the contract; the update is the same.

Acting samples under ``ExplorationType.RANDOM`` (uniform random actions
before ``learning_starts``); evaluation uses ``ExplorationType.DETERMINISTIC``
(``TanhNormal``'s ``deterministic_sample``, the squashed loc, as SB3).

Examples:
    >>> import gymnasium as gym
    >>> from tdrl.recipes.sac import SACConfig, build_agent
    >>> spaces = gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,))
    >>> type(build_agent(SACConfig(), *spaces).agent).__name__
    'ActorCriticWrapper'
    >>> type(build_agent(SACConfig(shared_trunk=True), *spaces).agent).__name__
    'ActorCriticOperator'
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np
import torch
from tensordict import TensorDict
from torch import nn

from tdrl._compat import lerp_all_
from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import (
    MLP,
    ActorCriticOperator,
    ActorCriticWrapper,
    NormalParamExtractor,
    SafeModule,
    TanhNormal,
    ValueOperator,
)
from tdrl.recipes.blocks import (
    Clock,
    box_to_env,
    deterministic_act,
    load_policy_operator,
    make_adam,
    tanh_normal_actor,
)
from tdrl.recipes.config import CommonConfig, TrainError, check_positive, option
from tdrl.recipes.envs import EnvInfo, check_env_step, check_policy_action, final_observations
from tdrl.recipes.fastpath import plain_forward
from tdrl.recipes.offpolicy import OffPolicy, check_offpolicy
from tdrl.recipes.protocol import Recipe
from tdrl.recipes.sac_user import check_parts, sampler, user_sac_parts
from tdrl.recipes.twin_q import TwinQ
from tdrl.recipes.user_module import build_user_module


@dataclasses.dataclass
class SACConfig(CommonConfig):
    """SAC hyperparameters: SB3's defaults (RL-Zoo's per-env settings in ``ENV_DEFAULTS``).

    Examples:
        >>> cfg = SACConfig()
        >>> cfg.hidden, cfg.batch_size, cfg.tau, cfg.learning_starts
        ((256, 256), 256, 0.005, 100)
        >>> SACConfig(tau=1.5).validate()
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: --tau must be in (0, 1], got 1.5
    """

    env: str = option("Pendulum-v1", "gymnasium environment id")
    total_steps: int = option(20_000, "environment steps to train for")
    num_envs: int = option(1, "parallel environments (gymnasium SyncVectorEnv)")
    lr: float = option(3e-4, "Adam learning rate (actor, critics and temperature)")
    gamma: float = option(0.99, "discount factor")
    tau: float = option(0.005, "target critic Polyak rate")
    buffer_size: int = option(1_000_000, "replay buffer capacity (transitions)")
    batch_size: int = option(256, "minibatch size")
    learning_starts: int = option(100, "env steps of uniform random actions before learning")
    train_freq: int = option(1, "env steps between training phases")
    gradient_steps: int = option(1, "gradient steps per training phase")
    init_alpha: float = option(1.0, "initial entropy temperature alpha")
    autotune: bool = option(True, "tune alpha towards the target entropy (else fixed)")
    target_entropy: float | None = option(
        None, "target entropy in the [-1, 1]-normalized action space; unset: -dim(A)"
    )
    hidden: tuple = option((256, 256), "layer sizes of the actor and of each critic")
    shared_trunk: bool = option(
        False,
        "one trunk (the first --hidden layer) under the actor and critic heads "
        "(ActorCriticOperator) instead of separate networks (ActorCriticWrapper)",
    )
    log_every: int = option(1_000, "environment steps between metrics.csv rows")
    module: str = option(
        "",
        "train these networks instead of the recipe's: package.module:factory, called as "
        "factory(observation_space, action_space) -> an ActorCriticOperator, an "
        "ActorCriticWrapper or an (actor, critic) pair: a ProbabilisticActor sampling a "
        "reparameterizable distribution inside the Box (TanhNormal on its bounds) with its "
        "log-prob, and a Q(s, a) critic reading action (one column: SAC adds a fresh copy as "
        "its twin); tdrl.train(module=...) also takes the module itself",
    )

    def validate(self) -> None:
        """Check the numbers before anything is created (raises ``TrainError``)."""
        super().validate()
        check_offpolicy(self)
        check_positive(self, ["init_alpha"])
        if self.target_entropy is not None and not math.isfinite(self.target_entropy):
            raise TrainError(f"--target-entropy must be finite, got {self.target_entropy}")
        if self.module and self.shared_trunk:
            raise TrainError(
                "--shared-trunk applies to the recipe's own networks only; with --module pass an "
                "ActorCriticOperator (your trunk under the actor and critic heads)"
            )


# Per-env defaults on top of the dataclass defaults (RL-Zoo's hyperparams/sac.yml).
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "Pendulum-v1": {"total_steps": 20_000, "lr": 1e-3},
    "HalfCheetah-v5": {"total_steps": 1_000_000, "learning_starts": 10_000},
}


# ----------------------------------------------------------------------------- networks
class AgentParts(NamedTuple):
    """The operator and the views of it that the update uses (all share its parameters)."""

    agent: Any  # ActorCriticWrapper or ActorCriticOperator
    policy: Any  # observation -> action, sample_log_prob (get_policy_operator())
    qvalue: Any  # observation + given action -> state_action_value [.., 2]
    critic_head: Any  # the critic ValueOperator (reads observation or hidden, and action)
    twin: Any  # TwinQ (the critic head's network) or TwinCritic (module=): has frozen()
    feature_key: str  # what the critic head reads besides the action
    act_net: nn.Module | None  # obs -> (loc, scale) for acting; None: sample the user's policy
    log_prob_key: str = "sample_log_prob"  # where the policy writes log pi(a|s)


def build_agent(cfg: SACConfig, obs_space: Any, action_space: Any) -> AgentParts:
    """Actor and twin critics for ``obs_space`` / ``action_space`` (``cfg.shared_trunk``).

    Examples:
        >>> import gymnasium as gym
        >>> parts = build_agent(SACConfig(hidden=(16, 16), shared_trunk=True),
        ...                     gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,)))
        >>> td = TensorDict(observation=torch.zeros(4, 3), action=torch.ones(4, 1), batch_size=[4])
        >>> parts.qvalue(td)["state_action_value"].shape, td["action"].unique().tolist()
        (torch.Size([4, 2]), [1.0])
    """
    if cfg.module:  # the user's networks (tdrl.recipes.sac_user states the contract)
        user = build_user_module(cfg.module, obs_space, action_space)
        return AgentParts(**user_sac_parts(user, obs_space, action_space))
    obs_dim = int(np.prod(obs_space.shape))
    act_dim = int(np.prod(action_space.shape))
    hidden = list(cfg.hidden)
    if cfg.shared_trunk:
        trunk_net = MLP(
            in_features=obs_dim,
            out_features=hidden[0],
            num_cells=[],
            activation_class=nn.ReLU,
            activate_last_layer=True,
        )
        trunk = SafeModule(trunk_net, in_keys=["observation"], out_keys=["hidden"])
        feature_key, feat_dim, cells = "hidden", hidden[0], hidden[1:]
    else:
        feature_key, feat_dim, cells = "observation", obs_dim, hidden
    actor_net = nn.Sequential(
        MLP(
            in_features=feat_dim,
            out_features=2 * act_dim,
            num_cells=cells,
            activation_class=nn.ReLU,
            activation_kwargs={"inplace": True},
        ),
        NormalParamExtractor(),
    )
    policy = tanh_normal_actor(actor_net, feature_key, action_space)
    twin = TwinQ(feat_dim + act_dim, tuple(cells))
    critic = ValueOperator(twin, in_keys=[feature_key, "action"])
    if cfg.shared_trunk:
        agent = ActorCriticOperator(trunk, policy, critic)
        qvalue = agent.get_qvalue_operator()
    else:
        agent = ActorCriticWrapper(policy, critic)
        qvalue = agent.get_value_operator()
    act_net = nn.Sequential(trunk_net, actor_net) if cfg.shared_trunk else actor_net
    return AgentParts(
        agent, agent.get_policy_operator(), qvalue, critic, twin, feature_key, act_net
    )


def make_act(cfg: SACConfig, env: EnvInfo, model_state: dict, device: Any):
    """Deterministic policy ``obs batch (numpy) -> env actions`` from saved weights.

    Examples:
        >>> import gymnasium as gym
        >>> env = EnvInfo(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,)), None)
        >>> cfg = SACConfig(hidden=(8, 8))
        >>> act = make_act(cfg, env, build_agent(cfg, *env[:2]).agent.state_dict(), "cpu")
        >>> act(np.zeros((5, 3), dtype=np.float32)).shape
        (5, 1)
    """
    policy = make_policy(cfg, env, model_state, device)
    return deterministic_act(policy, device, box_to_env(env.action_space))


def make_policy(cfg: SACConfig, env: EnvInfo, model_state: dict, device: Any) -> Any:
    """The policy operator (trunk if any + actor, eval mode) with saved weights, for export.

    Examples:
        >>> import gymnasium as gym
        >>> env = EnvInfo(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,)), None)
        >>> cfg = SACConfig(hidden=(8, 8))
        >>> policy = make_policy(cfg, env, build_agent(cfg, *env[:2]).agent.state_dict(), "cpu")
        >>> policy(TensorDict(observation=torch.zeros(5, 3), batch_size=[5]))["action"].shape
        torch.Size([5, 1])
    """
    agent = build_agent(cfg, env.observation_space, env.action_space).agent
    return load_policy_operator(agent, model_state, device)


def prepare(cfg: SACConfig, env: EnvInfo) -> None:
    """Build the networks once before anything is written; check the user's (``module=``).

    Examples:
        >>> import gymnasium as gym
        >>> prepare(SACConfig(hidden=(8,)), EnvInfo(gym.spaces.Box(-1, 1, (3,)),
        ...                                         gym.spaces.Box(-2, 2, (1,)), None))
    """
    if cfg.module:  # the recipe's own networks need no check
        parts = build_agent(cfg, env.observation_space, env.action_space)
        check_parts(parts, env.observation_space, env.action_space)


# ----------------------------------------------------------------------------- algorithm
class SAC(OffPolicy):
    """One SAC run: envs, actor, twin critics and their targets, temperature, replay buffer.

    ``iterate()`` acts and learns up to the next ``log_every`` boundary;
    ``state_dict()`` captures everything needed to continue exactly.

    Examples:
        >>> from tdrl.recipes.envs import probe_env
        >>> cfg = SACConfig(total_steps=64, learning_starts=32, batch_size=16, hidden=(16, 16),
        ...                 log_every=64)
        >>> algo = SAC(cfg, probe_env("Pendulum-v1"))
        >>> row = algo.iterate()
        >>> algo.global_step, row["updates"], len(algo.buffer)
        (64, 32, 64)
        >>> algo.close()
    """

    loss_columns = ["critic_loss", "actor_loss", "alpha", "entropy", "q_mean", "updates"]

    def __init__(self, cfg: SACConfig, env: EnvInfo, clock: Clock | None = None) -> None:
        obs_space, action_space, threshold = env
        super().__init__(cfg, threshold, clock)
        self.action_space = action_space
        parts = build_agent(cfg, obs_space, action_space)
        self.parts = parts
        self.agent = parts.agent.to(self.device)
        self.log_prob_key = parts.log_prob_key
        # target critics (and trunk): a frozen copy of the operator, read through the same getter
        self.target_agent = copy.deepcopy(self.agent).requires_grad_(False)
        self.target_qvalue = (
            self.target_agent.get_qvalue_operator()
            if isinstance(self.agent, ActorCriticOperator)
            else self.target_agent.get_value_operator()
        )
        online = list(self.agent.trunk_parameters()) + list(self.agent.value_parameters())
        target = list(self.target_agent.trunk_parameters()) + list(
            self.target_agent.value_parameters()
        )
        self.polyak_pairs = (target, online)
        act_dim = int(np.prod(action_space.shape))
        half = (action_space.high - action_space.low) / 2.0
        normalized = -act_dim if cfg.target_entropy is None else cfg.target_entropy
        # log pi is measured on [low, high]; the target is set on [-1, 1] actions (as SB3)
        self.target_entropy = float(normalized + np.log(half).sum())
        self.log_alpha = torch.tensor(
            math.log(cfg.init_alpha), device=self.device, requires_grad=cfg.autotune
        )
        params = list(self.agent.parameters()) + ([self.log_alpha] if cfg.autotune else [])
        self.optimizer = make_adam(params, cfg.lr)
        # the acting hot path draws from the policy's TanhNormal without a TensorDict
        self.bounds = {
            key: torch.as_tensor(getattr(action_space, key), dtype=torch.float32).to(self.device)
            for key in ("low", "high")
        }
        self.open_envs()
        self.envs.action_space.seed(cfg.seed)
        self._act = deterministic_act(parts.policy, self.device, box_to_env(action_space))
        self.fast = self._fast_nets()
        self._sample = sampler(parts.policy, self.device) if parts.act_net is None else None

    def _fast_nets(self) -> tuple | None:
        """The recipe's own separate networks as tensor functions for :meth:`update`, or None.

        ``(actor: obs -> (loc, scale), twin Q, target twin Q, the policy operator they
        stand for)``, on the operator's very
        parameters; None (the generic operator path) for a shared trunk or any network
        that is not the one :func:`build_agent` makes.
        """
        parts = self.parts
        if self.cfg.shared_trunk or getattr(self.cfg, "module", ""):
            return None
        net = parts.act_net
        if not (isinstance(net, nn.Sequential) and len(net) == 2
                and isinstance(net[1], NormalParamExtractor) and type(parts.twin) is TwinQ):
            return None
        mlp, extract = plain_forward(net[0]), net[1]
        target = [m for m in self.target_agent.modules() if type(m) is TwinQ]
        if mlp is None or len(target) != 1:
            return None

        def actor(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return extract(mlp(obs))

        return actor, parts.twin.forward, target[0].forward, parts.policy

    # -- acting -----------------------------------------------------------------------------
    @torch.no_grad()
    def env_step(self) -> None:
        """One vector step (uniform random actions before ``learning_starts``); stores it."""
        n = self.cfg.num_envs
        if self.global_step < self.cfg.learning_starts:
            action = self.envs.action_space.sample().astype(np.float32)
        elif self._sample is not None:  # module=: the user's actor draws from its distribution
            action = self._sample(self.obs)
            check_policy_action(action)
        else:
            # what parts.policy samples under ExplorationType.RANDOM, without a TensorDict
            loc, scale = (self.parts.act_net if self.fast is None else self.fast[0])(self.obs)
            action = TanhNormal(loc, scale, **self.bounds).sample().cpu().numpy()
            check_policy_action(action)
        obs, reward, terminated, truncated, info = self.envs.step(
            action.reshape(n, *self.action_space.shape)
        )
        self.global_step += n
        done = terminated | truncated
        final = final_observations(info, done) if done.any() else None
        check_env_step(obs, reward, self.global_step, final)
        self.stats.update(reward, done, self.global_step, self.clock())
        next_obs = obs
        if final is not None:  # same-step autoreset: the true last observation is in info
            next_obs = obs.copy()
            next_obs[done] = final
        self.buffer.add(
            {
                "observation": self.obs,
                "action": torch.as_tensor(action).reshape(n, -1),
                "reward": torch.as_tensor(reward, dtype=torch.float32),
                "next_observation": self._obs_tensor(next_obs),
                "terminated": torch.as_tensor(terminated, dtype=torch.float32),
            }
        )
        self.obs = self._obs_tensor(obs)

    # -- learning ---------------------------------------------------------------------------
    def update(self) -> torch.Tensor:
        """One gradient step on a replay minibatch; returns the logged values, detached."""
        if self.fast is not None and self.parts.policy is self.fast[3]:  # (parts not replaced)
            return self._update_fast()
        cfg, parts = self.cfg, self.parts
        batch = self.buffer.sample(cfg.batch_size)
        obs, next_obs, action = batch["observation"], batch["next_observation"], batch["action"]
        reward, terminated = batch["reward"], batch["terminated"]
        b = obs.shape[0]
        alpha = self.log_alpha.detach().exp()
        # a ~ pi(.|s) with gradient; a' ~ pi(.|s') without (two calls: a batched one would
        # backpropagate zeros through the next-observation half)
        with set_exploration_type(ExplorationType.RANDOM):
            pi = parts.policy(TensorDict({"observation": obs}, batch_size=[b]))
            with torch.no_grad():
                nxt = parts.policy(TensorDict({"observation": next_obs}, batch_size=[b]))
        a_pi, log_prob_pi = pi.get("action"), pi.get(self.log_prob_key).reshape(b)
        with torch.no_grad():
            log_prob_next = nxt.get(self.log_prob_key).reshape(b)
            next_q = self.target_qvalue(nxt.select("observation", "action"))
            next_q = next_q.get("state_action_value").min(-1).values
            next_v = next_q - alpha * log_prob_next
            target = reward + cfg.gamma * (1.0 - terminated) * next_v
        # the critics on the replayed actions (the getter leaves "action" as given)
        q = parts.qvalue(TensorDict({"observation": obs, "action": action}, batch_size=[b])).get(
            "state_action_value"
        )
        critic_loss = 0.5 * (q - target.unsqueeze(-1)).pow(2).mean(0).sum()
        # the actor loss reads the critics through detached weights (and detached features)
        features = pi.get(parts.feature_key).detach()
        with parts.twin.frozen():
            q_pi = parts.critic_head(
                TensorDict({parts.feature_key: features, "action": a_pi}, batch_size=[b])
            ).get("state_action_value")
        return self._step(critic_loss, q, q_pi, log_prob_pi, alpha)

    def _update_fast(self) -> torch.Tensor:
        """:meth:`update` for the recipe's own networks: the same math, called on tensors.

        What the operator path computes, step for step: the policy's ``TanhNormal`` draw and
        log-probability (``rsample_and_log_prob``, as the actor under RANDOM), the twin critics
        on the replayed and the fresh actions, the target twin on the next ones.
        """
        cfg = self.cfg
        actor, twin, target_twin, _ = self.fast
        batch = self.buffer.sample_tensors(cfg.batch_size)
        obs, next_obs, action = batch["observation"], batch["next_observation"], batch["action"]
        reward, terminated = batch["reward"], batch["terminated"]
        alpha = self.log_alpha.detach().exp()
        a_pi, log_prob_pi = TanhNormal(*actor(obs), **self.bounds).rsample_and_log_prob()
        with torch.no_grad():
            a_next, log_prob_next = TanhNormal(
                *actor(next_obs), **self.bounds
            ).rsample_and_log_prob()
            next_q = target_twin(next_obs, a_next).min(-1).values
            target = reward + cfg.gamma * (1.0 - terminated) * (next_q - alpha * log_prob_next)
        q = twin(obs, action)
        critic_loss = 0.5 * (q - target.unsqueeze(-1)).pow(2).mean(0).sum()
        with self.parts.twin.frozen():
            q_pi = twin(obs, a_pi)
        return self._step(critic_loss, q, q_pi, log_prob_pi, alpha)

    def _step(self, critic_loss: torch.Tensor, q: torch.Tensor, q_pi: torch.Tensor,
              log_prob_pi: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """The actor (and temperature) losses on the critics' ``q_pi``, one optimizer step on
        the sum with the critic loss, the Polyak target update; returns the logged values."""
        actor_loss = (alpha * log_prob_pi - q_pi.min(-1).values).mean()
        loss = critic_loss + actor_loss
        if self.cfg.autotune:
            alpha_loss = -(self.log_alpha * (log_prob_pi.detach() + self.target_entropy)).mean()
            loss = loss + alpha_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        lerp_all_(self.polyak_pairs[0], self.polyak_pairs[1], self.cfg.tau)
        self.updates += 1
        return torch.stack([critic_loss, actor_loss, alpha, -log_prob_pi.mean(), q.mean()]).detach()

    def iterate(self) -> dict[str, float | None]:
        """Act and learn until the next ``log_every`` boundary; returns the loss columns."""
        cfg = self.cfg
        stop = min(cfg.total_steps, (self.global_step // cfg.log_every + 1) * cfg.log_every)
        logged: list[torch.Tensor] = []
        while self.global_step < stop:
            self.env_step()
            if self.global_step > cfg.learning_starts:
                self.since_train += cfg.num_envs
                while self.since_train >= cfg.train_freq:
                    self.since_train -= cfg.train_freq
                    for _ in range(cfg.gradient_steps):
                        logged.append(self.update())
        # no update yet (before learning_starts): empty cells, never NaN (the loop stops on NaN)
        means = torch.stack(logged).mean(0).tolist() if logged else [None] * 5
        row = dict(zip(self.loss_columns, means))
        row["alpha"] = float(self.log_alpha.detach().exp())
        row["updates"] = self.updates
        return row

    # -- checkpointing (the rest is OffPolicy's) --------------------------------------------
    def checkpointed(self) -> dict[str, Any]:
        return {
            "model": self.agent,
            "target": self.target_agent,
            "log_alpha": self.log_alpha,
            "optimizer": self.optimizer,
        }


RECIPE = Recipe(
    name="sac",
    summary="SAC on gymnasium vector envs: a TanhNormal actor and twin Q(s, a) critics.",
    config=SACConfig,
    action_spaces=("box",),
    algorithm=SAC,
    make_act=make_act,
    env_defaults=ENV_DEFAULTS,
    make_policy=make_policy,
    prepare=prepare,
)
