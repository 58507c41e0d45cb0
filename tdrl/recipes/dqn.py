"""DQN on gymnasium vector envs, with a ``QValueActor`` and ``EGreedyModule``.

One file, top to bottom, in the CleanRL spirit:

1. ``build_qnet``: an ``MLP`` mapping the observation to one value per action,
   wrapped in a ``QValueActor`` (writes ``"action"``, ``"action_value"`` and
   ``"chosen_action_value"``); exploration is a ``SafeSequential`` of the
   actor and an ``EGreedyModule`` whose epsilon anneals linearly over
   ``exploration_fraction * total_steps`` env steps.
2. ``NStepReturns`` + ``ReplayBuffer``: per-env n-step transitions (reward =
   discounted sum of the next n rewards, bootstrap discount gamma**n) in a
   preallocated ``TensorDict`` ring; the next observation of an episode cut
   by the time limit is its true final observation, and only real
   terminations stop the bootstrap.
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
import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import nn

from tdrl._compat import clip_grad_norm_, copy_all_, lerp_all_
from tdrl.data import Categorical
from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import (
    MLP,
    DistributionalQValueActor,
    DuelingCnnDQNet,
    DuelingMlpDQNet,
    EGreedyModule,
    QValueActor,
    SafeSequential,
)
from tdrl.recipes.blocks import (
    Clock,
    EpisodeStats,
    deterministic_act,
    linear_schedule,
    make_adam,
    obs_tensor,
)
from tdrl.recipes.config import CommonConfig, TrainError, check_positive, check_range, option
from tdrl.recipes.envs import EnvInfo, check_env_step, final_observations
from tdrl.recipes.fastpath import plain_forward
from tdrl.recipes.finite import check_finite, check_params, float_tensors
from tdrl.recipes.frame_replay import FrameReplay, stores_frames
from tdrl.recipes.offpolicy import OffPolicy, check_offpolicy
from tdrl.recipes.protocol import Recipe
from tdrl.recipes.remote import ApexConfig, open_apex_collector
from tdrl.recipes.trunks import image_features, obs_kind
from tdrl.recipes.user_module import build_user_module


@dataclasses.dataclass
class DQNConfig(ApexConfig, CommonConfig):
    """DQN hyperparameters, tuned on CartPole-v1 (solves within 50k steps).

    RL-Zoo's CartPole-v1 DQN (lr 2.3e-3, batch 64, 100k buffer, train every
    256 steps with 128 gradient steps, target refreshed every 10 steps,
    epsilon to 0.04 over 16% of the run) on a 128x128 network, plus 3-step
    returns, Double DQN and a learning rate decayed to 0, which make every
    seed reach 500 and stay there instead of stalling around 100-200.

    Examples:
        >>> cfg = DQNConfig()
        >>> cfg.total_steps, cfg.double_dqn
        (50000, True)
        >>> DQNConfig(eps_end=1.5).validate()
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: --eps-end must be in [0, 1], got 1.5
    """

    total_steps: int = option(
        50_000, "environment steps to train for (rounded up to a whole vector step)"
    )
    num_envs: int = option(4, "parallel environments (gymnasium SyncVectorEnv)")
    lr: float = option(2.3e-3, "Adam learning rate")
    anneal_lr: bool = option(True, "decay the learning rate linearly to 0")
    gamma: float = option(0.99, "discount factor")
    buffer_size: int = option(100_000, "replay buffer capacity (transitions)")
    batch_size: int = option(64, "minibatch size")
    learning_starts: int = option(1_000, "env steps of pure collection before learning")
    train_freq: int = option(256, "env steps between training phases")
    gradient_steps: int = option(128, "gradient steps per training phase")
    target_update: int = option(10, "env steps between target network updates")
    tau: float = option(1.0, "target update rate (1 = hard copy)")
    eps_init: float = option(1.0, "initial epsilon")
    eps_end: float = option(0.04, "final epsilon")
    exploration_fraction: float = option(0.16, "fraction of total steps over which epsilon anneals")
    n_step: int = option(3, "n-step returns (1 = classic one-step DQN target)")
    double_dqn: bool = option(True, "Double DQN target (online argmax, target value)")
    max_grad_norm: float = option(10.0, "gradient norm clipping")
    hidden: tuple = option((128, 128), "Q-network layers")
    activation: str = option("relu", "activation", choices=["relu", "tanh", "elu"])
    dueling: bool = option(
        False, "dueling Q-network (value + advantage heads; DuelingCnnDQNet on images)"
    )
    cnn: str = option(
        "auto",
        "image observations: the convolutions before --hidden (nature: 32@8x8/4, 64@4x4/2, "
        "64@3x3/1; minatar: 16@3x3/1; auto: nature from 36x36 frames up)",
        choices=["auto", "nature", "minatar"],
    )
    log_every: int = option(1_000, "env steps between metrics.csv rows")
    module: str = option(
        "",
        "train this network instead of the recipe's: package.module:factory, called as "
        "factory(observation_space, action_space) -> QValueActor with index actions "
        "(action_space='categorical') reading observation, or a DistributionalQValueActor "
        "(trained with C51's loss on its support); tdrl.train(module=...) also takes "
        "the module itself",
    )

    def validate(self) -> None:
        """Check the numbers before anything is created (raises ``TrainError``)."""
        super().validate()
        self.validate_remote()
        # one env step can flush up to num_envs * n_step transitions into the buffer at once
        check_offpolicy(self, per_step="num_envs * n_step")
        check_positive(self, ["target_update", "max_grad_norm", "n_step"])
        check_range(self, ["eps_init", "eps_end", "exploration_fraction", "lr"], 0.0, 1.0)

ENV_DEFAULTS: dict[str, dict[str, Any]] = {"CartPole-v1": {}}
# Pixels (the atari / minatar extras): RL-Zoo's Atari DQN (one env, 100k buffer, lr 1e-4,
# batch 32, a gradient step every 4 env steps, target copied every 1,000, epsilon to 0.01 over
# 10% of the run, one-step vanilla DQN; Nature CNN + 512). MinAtar's 1M-step budget: learning
# starts after 5k steps (not 100k), the MinAtar paper's small network (16@3x3 + 128), and 8 envs
# acting together with 2 gradient steps per 8 env steps (the same 1 per 4, in fewer phases).
_ATARI_DQN = {
    "num_envs": 1, "lr": 1e-4, "anneal_lr": False, "gamma": 0.99, "buffer_size": 100_000,
    "batch_size": 32, "learning_starts": 100_000, "train_freq": 4, "gradient_steps": 1,
    "target_update": 1_000, "tau": 1.0, "eps_init": 1.0, "eps_end": 0.01,
    "exploration_fraction": 0.1, "n_step": 1, "double_dqn": False, "max_grad_norm": 10.0,
    "hidden": (512,), "activation": "relu", "total_steps": 10_000_000, "log_every": 10_000,
    "checkpoint_every": 100_000,
}
ENV_DEFAULTS["ALE/*"] = _ATARI_DQN
ENV_DEFAULTS["MinAtar/*"] = {
    **_ATARI_DQN, "learning_starts": 5_000, "hidden": (128,), "total_steps": 1_000_000,
    "num_envs": 8, "train_freq": 8, "gradient_steps": 2,
}


def build_qnet(cfg: DQNConfig, obs_space: Any, action_space: Any) -> Any:
    """``QValueActor`` over an ``MLP`` (index actions, ``Categorical`` spec).

    Examples:
        >>> import gymnasium as gym
        >>> from tensordict import TensorDict
        >>> qnet = build_qnet(DQNConfig(), gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(3))
        >>> td = qnet(TensorDict(observation=torch.zeros(5, 4), batch_size=[5]))
        >>> td["action"].shape, td["action_value"].shape
        (torch.Size([5]), torch.Size([5, 3]))
    """
    if cfg.module:
        qnet = build_user_module(cfg.module, obs_space, action_space)
        if not isinstance(qnet, QValueActor | DistributionalQValueActor):
            raise TrainError(
                "module=: DQN trains a QValueActor or a DistributionalQValueActor, got "
                f"{type(qnet).__name__}"
            )
        return qnet
    act = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}[cfg.activation]
    n = int(action_space.n)
    if obs_kind(obs_space) == "image":  # ScaleFrames + ConvNet, then dense layers: uint8 in
        features, width = image_features(obs_space, cfg.cnn)
        if cfg.dueling:
            dueling = DuelingCnnDQNet(n, mlp_kwargs={"in_features": width, "num_cells": list(
                cfg.hidden), "depth": len(cfg.hidden), "activation_class": act})
            dueling.features = features  # the same convolutions, reading uint8 frames
            net: nn.Module = dueling
        else:
            head = MLP(in_features=width, out_features=n, num_cells=list(cfg.hidden),
                       activation_class=act)
            net = nn.Sequential(features, head)
        return QValueActor(net, in_keys=["observation"], spec=Categorical(n))
    if cfg.dueling:
        net = DuelingMlpDQNet(  # the hidden layers shared, then linear value/advantage heads
            n,
            mlp_kwargs_feature={"in_features": int(np.prod(obs_space.shape)),
                                "num_cells": list(cfg.hidden[:-1]), "depth": len(cfg.hidden) - 1,
                                "out_features": cfg.hidden[-1], "activation_class": act},
            mlp_kwargs_output={"in_features": cfg.hidden[-1], "num_cells": [], "depth": 0},
        )
        return QValueActor(net, in_keys=["observation"], spec=Categorical(n))
    mlp = MLP(
        in_features=int(np.prod(obs_space.shape)),
        out_features=n,
        num_cells=list(cfg.hidden),
        activation_class=act,
    )
    return QValueActor(mlp, in_keys=["observation"], spec=Categorical(n))


def prepare(cfg: DQNConfig, env: EnvInfo) -> None:
    """Build the Q-network once before anything is written and check what DQN needs of it.

    It must read only ``observation``; its network (the actor's first step) must
    map a batch of observations to ``[batch, n]`` action values (a
    ``DistributionalQValueActor``: ``[batch, n_atoms, n]`` logits over an evenly
    spaced support); the actor must write index actions (DQN stores them as
    indices). Raises ``TrainError``.

    Examples:
        >>> import gymnasium as gym
        >>> from tdrl.modules import QValueActor
        >>> env = EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), None)
        >>> prepare(DQNConfig(), env)
    """
    obs_space, action_space = env.observation_space, env.action_space
    qnet, n = build_qnet(cfg, obs_space, action_space), int(action_space.n)
    if list(qnet.in_keys) != ["observation"]:
        raise TrainError(
            f"module=: the Q-network reads {list(qnet.in_keys)}; DQN gives it only 'observation'"
        )
    obs = obs_tensor(np.stack([obs_space.sample(), obs_space.sample()]))
    param = next(qnet.parameters(), None)
    obs = obs.to(param.device if param is not None else "cpu")
    try:
        with torch.no_grad():
            values = qnet[0].module(obs)
            action = qnet(TensorDict({"observation": obs}, [2], device=obs.device))["action"]
    except Exception as err:  # noqa: BLE001 - the user's network, reported with its message
        raise TrainError(
            f"module=: the Q-network failed on a batch of 2 observations of shape "
            f"{tuple(obs_space.shape)}: {type(err).__name__}: {err}"
        ) from None
    expected = (2, n)
    if isinstance(qnet, DistributionalQValueActor):
        from tdrl.recipes.dqn_distributional import check_support

        support = qnet.qvalue_module.support
        check_support(support)
        expected = (2, support.numel(), n)
    if tuple(values.shape) != expected:
        what = " (atoms, actions)" if len(expected) == 3 else ""
        raise TrainError(
            f"module=: the network gives action values of shape {tuple(values.shape)} for a "
            f"batch of 2; {action_space} needs {expected}{what}"
        )
    if tuple(action.shape) != (2,) or action.is_floating_point():
        raise TrainError(
            f"module=: the actor writes actions of shape {tuple(action.shape)} ({action.dtype}); "
            "DQN stores index actions: build the QValueActor with action_space='categorical'"
        )


def make_act(cfg: DQNConfig, env: EnvInfo, model_state: dict, device: Any):
    """Greedy policy ``obs batch (numpy) -> env actions`` from saved weights.

    Examples:
        >>> import gymnasium as gym
        >>> env = EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), None)
        >>> qnet = build_qnet(DQNConfig(), *env[:2])
        >>> act = make_act(DQNConfig(), env, qnet.state_dict(), "cpu")
        >>> act(np.zeros((3, 4), dtype=np.float32)).shape
        (3,)
    """
    return deterministic_act(make_policy(cfg, env, model_state, device), device)


def make_policy(cfg: DQNConfig, env: EnvInfo, model_state: dict, device: Any):
    """The Q-value actor (eval mode) with saved weights, for export."""
    qnet = build_qnet(cfg, env.observation_space, env.action_space)
    qnet.load_state_dict(model_state)
    return qnet.to(device).eval()


class NStepReturns:
    """Turns per-env streams of one-step transitions into n-step ones.

    Each emitted transition carries ``reward`` = sum of the next ``m <= n``
    discounted rewards, the observation ``m`` steps later, whether the episode
    *terminated* in between, and ``discount`` = ``gamma ** m`` for the
    bootstrap. An ending episode (terminated or truncated) flushes its pending
    steps with shorter horizons; a truncated one still bootstraps from its
    final observation.

    Examples:
        >>> ns = NStepReturns(n=2, gamma=0.5, num_envs=1)
        >>> o = np.zeros((1, 1), dtype=np.float32)
        >>> ns.push(o, np.array([0]), np.array([1.0]), o + 1, np.array([False]), np.array([False]))
        []
        >>> out = ns.push(o + 1, np.array([1]), np.array([2.0]), o + 2, np.array([True]),
        ...               np.array([True]))
        >>> [(t[2], t[4], t[5]) for t in out]  # (return, terminated, discount)
        [(2.0, True, 0.25), (2.0, True, 0.5)]
    """

    def __init__(self, n: int, gamma: float, num_envs: int) -> None:
        self.n, self.gamma = n, gamma
        self.pending: list[list[tuple[np.ndarray, int, float]]] = [[] for _ in range(num_envs)]

    def _emit(self, steps: list, next_obs: np.ndarray, terminated: bool) -> tuple:
        ret = 0.0
        for k, (_, _, r) in enumerate(steps):
            ret += (self.gamma**k) * r
        obs, action, _ = steps[0]
        return (obs, action, ret, next_obs, terminated, self.gamma ** len(steps))

    def push(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        done: np.ndarray,
    ) -> list[tuple]:
        """Add one vector step; returns the transitions that are now complete."""
        out = []
        for i, steps in enumerate(self.pending):
            steps.append((obs[i], int(action[i]), float(reward[i])))
            if done[i]:
                while steps:
                    out.append(self._emit(steps, next_obs[i], bool(terminated[i])))
                    steps.pop(0)
            elif len(steps) == self.n:
                out.append(self._emit(steps, next_obs[i], False))
                steps.pop(0)
        return out


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
