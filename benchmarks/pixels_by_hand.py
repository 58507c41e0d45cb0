"""PPO and DQN on image observations written by hand in plain torch: the floor for pixels.

The third side of ``benchmarks/pixels.py``: CleanRL-style (``ppo_atari.py``,
``dqn_atari.py``) training loops with tdrl's networks and tdrl's per-family
hyperparameters, and as little work around the network as the math allows, so
their time is a lower bound on what any implementation of the same training
needs. No tdrl module, no TensorDict, no distribution object on the hot path:

- the network is bare tensors and ``F.conv2d`` / ``F.linear`` calls, the frames
  go in as ``uint8`` and are scaled inside (``/ high``, the space's 255 or
  MinAtar's 1); the Nature CNN runs channels-last (NHWC) as tdrl's does, and its
  first dense layer takes the NHWC features in (H, W, C) order (a fixed
  permutation of its input columns: the same function class and the same Adam
  steps), so the flatten is a view instead of a copy;
- ReLU / tanh in place, both heads' first layers as one matmul (they read the
  same features: one weight tensor holding both, which Adam and the global
  gradient norm treat exactly as two), Atari's linear policy and value heads as
  one ``[n + 1, 512]`` matmul;
- acting under ``torch.inference_mode``; rollout and replay storage preallocated
  ``numpy`` arrays written in place (the replay a ring of ``uint8`` frames,
  observation and next observation per transition), GAE in ``numpy``; no
  per-step Python objects, no logging or checks on the hot path beyond what the
  math needs (a run's finiteness is checked once, by the caller);
- Adam as one ``torch._fused_adam_`` call (:class:`FusedAdam`), the gradient
  clip as ``_foreach_norm`` + ``_foreach_mul_``.

PPO (:class:`HandPixelPPO`) is tdrl's update (advantages normalized per
minibatch, clipped surrogate, value MSE, entropy bonus, lr and clip annealed on
the global step); it logs what CleanRL logs (the last minibatch's losses)
rather than tdrl's extra pass over the rollout. DQN (:class:`HandPixelDQN`) is
vanilla one-step DQN with tdrl's schedule (train every ``train_freq`` env steps
past ``learning_starts``, ``gradient_steps`` each, the target copied when the
step count crosses a multiple of ``target_update``); epsilon is fixed (the
benchmark holds it at its final 0.01) and the network is skipped when every env
explores, as SB3 does.

    >>> import numpy as np, torch
    >>> net = PixelNet((4, 10, 10), [(16, 3, 1)], (128,), high=1.0, nhwc=False)
    >>> sum(p.numel() for p in net.params), net(torch.zeros(2, 4, 10, 10, dtype=torch.uint8)).shape
    (131792, torch.Size([2, 128]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ACT_ = {"relu": torch.relu_, "tanh": torch.tanh_}  # in place on a fresh matmul output


def _orthogonal(shape: Sequence[int], gain: float) -> torch.Tensor:
    w = torch.empty(*shape)
    torch.nn.init.orthogonal_(w, gain)
    return w


def _default(shape: Sequence[int]) -> torch.Tensor:
    """``nn.Linear`` / ``nn.Conv2d``'s default initialisation of a weight."""
    w = torch.empty(*shape)
    torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    return w


def _bias(w: torch.Tensor, orthogonal: bool) -> torch.Tensor:
    if orthogonal:
        return torch.zeros(w.shape[0])
    bound = 1.0 / math.sqrt(w[0].numel())
    return torch.empty(w.shape[0]).uniform_(-bound, bound)


def _layer(shape: Sequence[int], gain: float | None) -> list[torch.Tensor]:
    """``[weight, bias]``: orthogonal with ``gain`` (zero bias), or torch's default (None)."""
    w = _orthogonal(shape, gain) if gain is not None else _default(shape)
    return [w, _bias(w, gain is not None)]


class FusedAdam:
    """Adam as one ``torch._fused_adam_`` call on preallocated state: ``torch.optim.Adam``'s
    fused step (the same kernel and numbers) without its Python wrapper (profiling hook, the
    per-step regrouping of parameters and state). Falls back to ``torch.optim.Adam`` where
    torch has no fused CPU kernel. ``lr`` may be changed between steps.

        >>> w = torch.randn(3, 2, requires_grad=True)
        >>> w2 = w.detach().clone().requires_grad_()
        >>> ours, ref = FusedAdam([w], 1e-2, 1e-5), torch.optim.Adam([w2], 1e-2, eps=1e-5)
        >>> for _ in range(3):
        ...     for p, opt in ((w, ours), (w2, ref)):
        ...         opt.zero_grad(); (p ** 3).sum().backward(); opt.step()
        >>> torch.allclose(w, w2, atol=1e-6)
        True
    """

    def __init__(self, params: list[torch.Tensor], lr: float, eps: float) -> None:
        self.params, self.lr, self.eps = params, lr, eps
        self.fallback = None if hasattr(torch, "_fused_adam_") else \
            torch.optim.Adam(params, lr=lr, eps=eps)
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        if self.fallback is not None:
            self.fallback.param_groups[0]["lr"] = self.lr
            self.fallback.step()
            return
        torch._foreach_add_(self.steps, 1)
        torch._fused_adam_(self.params, [p.grad for p in self.params], self.m, self.v, [],
                           self.steps, lr=self.lr, beta1=0.9, beta2=0.999, weight_decay=0.0,
                           eps=self.eps, amsgrad=False, maximize=False)


def clip_grads_(params: list[torch.Tensor], max_norm: float) -> None:
    """``clip_grad_norm_`` as two multi-tensor calls (no sync)."""
    grads = [p.grad for p in params]
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp_(max=1.0))


class PixelNet:
    """``uint8 [B, C, H, W]`` frames -> features: scale, ReLU convolutions, ReLU dense layers.

    ``convs`` lists ``(out_channels, kernel, stride)``; ``hidden`` the dense widths;
    ``nhwc`` runs the convolutions channels-last (the first dense weight then
    reads the features in (H, W, C) order); ``gain``: orthogonal init with that
    gain (PPO), None for torch's default (DQN). ``params`` is the flat list.
    """

    def __init__(self, obs_shape: Sequence[int], convs: Sequence[tuple[int, int, int]],
                 hidden: Sequence[int], high: float, nhwc: bool,
                 gain: float | None = None) -> None:
        c, h, w = (int(v) for v in obs_shape)
        self.params: list[torch.Tensor] = []
        self.strides: list[int] = []
        for out, k, s in convs:
            self.params += _layer((out, c, k, k), gain)
            self.strides.append(s)
            c, h, w = out, (h - k) // s + 1, (w - k) // s + 1
        width = c * h * w
        for size in hidden:
            self.params += _layer((size, width), gain)
            width = size
        self.width, self.n_conv, self.nhwc = width, len(convs), nhwc
        self.n_layers = len(self.params) // 2
        self.scale = 1.0 / float(high)

    def __call__(self, x: torch.Tensor, params: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Features of ``x``, with ``params`` (a list laid out as :attr:`params`) if given."""
        p = self.params if params is None else params
        if self.nhwc:
            x = x.to(torch.float32, memory_format=torch.channels_last)
        else:
            x = x.to(torch.float32)
        if self.scale != 1.0:
            x = x.mul_(self.scale)
        for i, s in enumerate(self.strides):
            x = F.conv2d(x, p[2 * i], p[2 * i + 1], s).relu_()
        # NHWC memory read as (H, W, C) rows: a view; NCHW: (C, H, W) rows, a view too
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1) if self.nhwc else x.flatten(1)
        for i in range(self.n_conv, self.n_layers):
            x = F.linear(x, p[2 * i], p[2 * i + 1]).relu_()
        return x


class Heads:
    """PPO's policy and value heads on the trunk's features: ``(logits [B, n], value [B])``.

    Each head is ``head_hidden`` layers (``activation``) then its output layer
    (orthogonal gains sqrt(2), 0.01 on the policy output, 1 on the value output,
    as tdrl's). Both heads' first layers run as one matmul.
    """

    def __init__(self, width: int, n_actions: int, head_hidden: Sequence[int],
                 activation: str) -> None:
        self.n, self.act = n_actions, ACT_[activation]
        gain = math.sqrt(2)
        hidden = list(head_hidden)
        if not hidden:  # linear heads: one [n + 1, width] layer, policy rows first
            pw, pb = _layer((n_actions, width), 0.01)
            vw, vb = _layer((1, width), 1.0)
            self.params = [torch.cat([pw, vw]), torch.cat([pb, vb])]
            self.depth = 0
            return
        pol = [_layer((hidden[0], width), gain)]
        val = [_layer((hidden[0], width), gain)]
        for a, b in zip(hidden[:-1], hidden[1:]):
            pol.append(_layer((b, a), gain))
            val.append(_layer((b, a), gain))
        pol.append(_layer((n_actions, hidden[-1]), 0.01))
        val.append(_layer((1, hidden[-1]), 1.0))
        first = [torch.cat([pol[0][0], val[0][0]]), torch.cat([pol[0][1], val[0][1]])]
        self.params = first + [t for layer in pol[1:] for t in layer] + \
            [t for layer in val[1:] for t in layer]
        self.depth, self.h0 = len(hidden), hidden[0]

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        if self.depth == 0:
            out = F.linear(x, p[0], p[1])
            return out[:, : self.n], out[:, self.n]
        both = self.act(F.linear(x, p[0], p[1]))
        pol, val = both[:, : self.h0], both[:, self.h0 :]
        k = 2 * self.depth  # policy layers after the first: p[2 : 2 + k]
        for i in range(2, 2 + k, 2):
            pol = F.linear(pol, p[i], p[i + 1])
            val = F.linear(val, p[i + k], p[i + k + 1])
            if i < k:
                pol, val = self.act(pol), self.act(val)
        return pol, val.squeeze(-1)


class HandPixelPPO:
    """PPO over a vector env of ``uint8`` frames: rollout in preallocated storage, GAE, update.

    ``cfg`` holds tdrl's PPO settings (``num_envs``, ``n_steps``, ``batch_size``,
    ``epochs``, ``lr``, ``clip``, ``anneal_lr``, ``anneal_clip``, ``ent_coef``,
    ``vf_coef``, ``max_grad_norm``, ``gamma``, ``gae_lambda``, ``reward_scale``,
    ``total_steps``, ``hidden``, ``head_hidden``, ``activation``, ``head_activation``);
    ``net`` the trunk. :meth:`run` trains for whole iterations.

        >>> import gymnasium as gym
        >>> cfg = dict(num_envs=2, n_steps=4, batch_size=4, epochs=2, lr=2.5e-4, clip=0.1,
        ...            anneal_lr=True, anneal_clip=True, ent_coef=0.01, vf_coef=0.5,
        ...            max_grad_norm=0.5, gamma=0.99, gae_lambda=0.95, reward_scale=1.0,
        ...            total_steps=1000, head_hidden=(8,), activation="relu",
        ...            head_activation="tanh")
        >>> net = PixelNet((4, 10, 10), [(16, 3, 1)], (32,), high=1.0, nhwc=False, gain=2 ** 0.5)
        >>> ppo = HandPixelPPO(cfg, net, n_actions=3)
        >>> obs = torch.randint(0, 2, (8, 4, 10, 10), dtype=torch.uint8)
        >>> row = ppo.update(obs, torch.randint(0, 3, (8,)), torch.full((8,), -1.1),
        ...                  torch.randn(8), torch.randn(8))
        >>> sorted(row), all(math.isfinite(v) for v in row.values())
        (['entropy', 'policy_loss', 'value_loss'], True)
    """

    def __init__(self, cfg: dict[str, Any], net: PixelNet, n_actions: int,
                 envs: Any = None, seed: int = 0) -> None:
        self.cfg, self.net = cfg, net
        self.heads = Heads(net.width, n_actions, cfg["head_hidden"],
                           cfg.get("head_activation") or cfg["activation"])
        self.params = [p.requires_grad_() for p in net.params + self.heads.params]
        self.optimizer = FusedAdam(self.params, cfg["lr"], eps=1e-5)
        self.global_step, self.envs = 0, envs
        if envs is not None:
            t, n = cfg["n_steps"], cfg["num_envs"]
            obs, _ = envs.reset(seed=seed)
            self.obs_buf = torch.empty((t + 1, n, *obs.shape[1:]), dtype=torch.uint8)
            self.obs_np = self.obs_buf.numpy()  # the same memory: env frames written in place
            self.obs_np[t] = obs  # each rollout starts from the previous one's last frame
            self.act_np = np.empty((t, n), dtype=np.int64)
            self.logp_np = np.empty((t, n), dtype=np.float32)
            self.val_np = np.empty((t + 1, n), dtype=np.float32)
            self.rew_np = np.empty((t, n), dtype=np.float32)
            self.done_np = np.empty((t, n), dtype=np.float32)
            self.returns = np.zeros(n)

    def _forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, value = self.heads(self.net(obs))
        return logits.log_softmax(-1), value

    def collect(self) -> tuple[torch.Tensor, ...]:
        """One ``n_steps`` rollout (same-step autoreset envs).

        Returns the flat ``(obs, action, log-prob, advantage, value target)``.
        """
        cfg, envs = self.cfg, self.envs
        t_max, n = cfg["n_steps"], cfg["num_envs"]
        obs_buf, obs_np, gamma = self.obs_buf, self.obs_np, cfg["gamma"]
        obs_np[0] = obs_np[t_max]
        with torch.inference_mode():
            for t in range(t_max):
                logp, value = self._forward(obs_buf[t])
                action = torch.multinomial(logp.exp(), 1, True)
                self.logp_np[t] = logp.gather(-1, action).squeeze(-1).numpy()
                self.val_np[t] = value.numpy()
                a = action.squeeze(-1).numpy()
                self.act_np[t] = a
                obs, reward, terminated, truncated, info = envs.step(a)
                done = terminated | truncated
                self.returns += reward
                self.returns[done] = 0.0
                self.rew_np[t] = reward * cfg["reward_scale"]
                cut = truncated & ~terminated
                if cut.any():  # bootstrap episodes cut by the time limit from their final frame
                    final = np.stack([info["final_obs"][i] for i in np.flatnonzero(cut)])
                    self.rew_np[t, cut] += gamma * self._forward(torch.from_numpy(final))[1].numpy()
                self.done_np[t] = done
                obs_np[t + 1] = obs
            self.val_np[t_max] = self._forward(obs_buf[t_max])[1].numpy()
        self.global_step += t_max * n
        # GAE in numpy on [n] rows
        adv = np.empty((t_max, n), dtype=np.float32)
        last = np.zeros(n, dtype=np.float32)
        lam, val, rew, not_done = cfg["gae_lambda"], self.val_np, self.rew_np, 1.0 - self.done_np
        for t in range(t_max - 1, -1, -1):
            delta = rew[t] + gamma * val[t + 1] * not_done[t] - val[t]
            last = delta + gamma * lam * not_done[t] * last
            adv[t] = last
        flat_obs = obs_buf[:t_max].reshape(t_max * n, *obs_buf.shape[2:])
        adv_t = torch.from_numpy(adv.reshape(-1))
        target = adv_t + torch.from_numpy(val[:t_max].reshape(-1))
        return (flat_obs, torch.from_numpy(self.act_np.reshape(-1)),
                torch.from_numpy(self.logp_np.reshape(-1)), adv_t, target)

    def update(self, obs_all: torch.Tensor, act_all: torch.Tensor, old_all: torch.Tensor,
               adv_all: torch.Tensor, target_all: torch.Tensor) -> dict[str, float]:
        """``epochs`` passes of shuffled minibatches; the last minibatch's losses."""
        cfg = self.cfg
        frac = max(0.0, 1.0 - self.global_step / cfg["total_steps"])
        lr = cfg["lr"] * (frac if cfg["anneal_lr"] else 1.0)
        clip = cfg["clip"] * (frac if cfg["anneal_clip"] else 1.0)
        self.optimizer.lr = lr
        n, bs = obs_all.shape[0], cfg["batch_size"]
        ent_coef, vf_coef, max_norm = cfg["ent_coef"], cfg["vf_coef"], cfg["max_grad_norm"]
        for _ in range(cfg["epochs"]):
            perm = torch.randperm(n)
            for i in range(0, n, bs):
                idx = perm[i : i + bs]
                adv = adv_all[idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                logp, value = self._forward(obs_all[idx])
                ratio = (logp.gather(-1, act_all[idx].unsqueeze(-1)).squeeze(-1)
                         - old_all[idx]).exp()
                policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()
                value_loss = (target_all[idx] - value).pow(2).mean()
                entropy = -(logp.exp() * logp).sum(-1).mean()
                loss = policy_loss + vf_coef * value_loss - ent_coef * entropy
                self.optimizer.zero_grad()
                loss.backward()
                clip_grads_(self.params, max_norm)
                self.optimizer.step()
        values = torch.stack([policy_loss, value_loss, entropy]).tolist()  # the one sync
        return dict(zip(("policy_loss", "value_loss", "entropy"), values))

    def run(self, steps: int) -> int:
        """Whole iterations (rollout + update) until at least ``steps`` env steps are done."""
        start = self.global_step
        while self.global_step < start + steps:
            self.last = self.update(*self.collect())
        return self.global_step - start


class HandPixelDQN:
    """Vanilla one-step DQN over a vector env of ``uint8`` frames, a ``numpy`` replay ring.

    ``cfg``: tdrl's DQN settings (``num_envs``, ``buffer_size``, ``batch_size``, ``lr``,
    ``gamma``, ``train_freq``, ``gradient_steps``, ``target_update``,
    ``max_grad_norm``, ``learning_starts``, ``eps``); ``net`` the body (a linear
    output layer to ``n_actions`` is added). :meth:`run` acts and learns.

        >>> cfg = dict(num_envs=1, buffer_size=64, batch_size=8, lr=1e-4, gamma=0.99,
        ...            train_freq=4, gradient_steps=1, target_update=100, max_grad_norm=10.0,
        ...            learning_starts=0, eps=0.01)
        >>> dqn = HandPixelDQN(cfg, PixelNet((4, 10, 10), [(16, 3, 1)], (32,), 1.0, False), 3)
        >>> frames = np.random.default_rng(0).integers(0, 2, (16, 4, 10, 10), dtype=np.uint8)
        >>> dqn.add(frames, np.zeros(16, dtype=np.int64), np.ones(16, dtype=np.float32),
        ...         frames, np.zeros(16, dtype=bool))
        >>> loss = dqn.train_step()
        >>> dqn.size, bool(torch.isfinite(loss))
        (16, True)
    """

    def __init__(self, cfg: dict[str, Any], net: PixelNet, n_actions: int,
                 envs: Any = None, seed: int = 0) -> None:
        self.cfg, self.net, self.n_actions = cfg, net, n_actions
        self.params = net.params + _layer((n_actions, net.width), None)
        for p in self.params:
            p.requires_grad_()
        self.target = [p.detach().clone() for p in self.params]
        self.optimizer = FusedAdam(self.params, cfg["lr"], eps=1e-8)
        self.rng = np.random.default_rng(seed)
        self.capacity, self.pos, self.size = cfg["buffer_size"], 0, 0
        self.ring: dict[str, np.ndarray] | None = None
        self.global_step, self.since_train, self.envs = 0, 0, envs
        if envs is not None:
            self.obs, _ = envs.reset(seed=seed)
            self.returns = np.zeros(cfg["num_envs"])

    def q(self, obs: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        """Action values ``[B, n]`` of ``uint8`` frames with ``params`` (online or target)."""
        return F.linear(self.net(obs, params), params[-2], params[-1])

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
            next_obs: np.ndarray, terminated: np.ndarray) -> None:
        """Write ``len(obs)`` transitions into the ring (the oldest overwritten once full)."""
        n = obs.shape[0]
        if self.ring is None:  # np.zeros: pages become resident only when written
            self.ring = {"obs": np.zeros((self.capacity, *obs.shape[1:]), np.uint8),
                         "next_obs": np.zeros((self.capacity, *obs.shape[1:]), np.uint8),
                         "action": np.zeros(self.capacity, np.int64),
                         "reward": np.zeros(self.capacity, np.float32),
                         "not_done": np.zeros(self.capacity, np.float32)}
        idx = (np.arange(n) + self.pos) % self.capacity if self.pos + n > self.capacity \
            else slice(self.pos, self.pos + n)
        r = self.ring
        r["obs"][idx], r["next_obs"][idx], r["action"][idx] = obs, next_obs, action
        r["reward"][idx], r["not_done"][idx] = reward, ~terminated
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def train_step(self) -> torch.Tensor:
        """One gradient step on a uniform minibatch; the loss (detached, not synced)."""
        cfg, r = self.cfg, self.ring
        idx = self.rng.integers(0, self.size, cfg["batch_size"])
        obs, next_obs = torch.from_numpy(r["obs"][idx]), torch.from_numpy(r["next_obs"][idx])
        with torch.no_grad():
            next_q = self.q(next_obs, self.target).max(-1).values
            target = torch.from_numpy(r["reward"][idx]).add_(
                next_q.mul_(torch.from_numpy(r["not_done"][idx])), alpha=cfg["gamma"])
        q = self.q(obs, self.params).gather(-1, torch.from_numpy(r["action"][idx])[:, None])
        loss = F.smooth_l1_loss(q.squeeze(-1), target)
        self.optimizer.zero_grad()
        loss.backward()
        clip_grads_(self.params, cfg["max_grad_norm"])
        self.optimizer.step()
        return loss.detach()

    def env_step(self) -> None:
        """One epsilon-greedy vector step, its transitions stored."""
        n, obs = self.cfg["num_envs"], self.obs
        explore = self.rng.random(n) < self.cfg["eps"]
        action = self.rng.integers(0, self.n_actions, n)
        if not explore.all():  # the network only when some env acts greedily
            with torch.inference_mode():
                greedy = self.q(torch.from_numpy(obs), self.params).argmax(-1).numpy()
            action = np.where(explore, action, greedy)
        next_obs, reward, terminated, truncated, info = self.envs.step(action)
        done = terminated | truncated
        self.returns += reward
        self.returns[done] = 0.0
        final = next_obs
        if done.any():  # same-step autoreset: the episode's last frame is in info
            final = next_obs.copy()
            final[done] = np.stack([info["final_obs"][i] for i in np.flatnonzero(done)])
        self.add(obs, action, reward, final, terminated)
        self.obs = next_obs
        self.global_step += n

    def run(self, steps: int) -> int:
        """Act (and learn past ``learning_starts``) for ``steps`` env steps (whole vector steps)."""
        cfg = self.cfg
        start, freq, every = self.global_step, cfg["train_freq"], cfg["target_update"]
        while self.global_step < start + steps:
            before = self.global_step
            self.env_step()
            if self.global_step >= cfg["learning_starts"]:
                self.since_train += cfg["num_envs"]
                while self.since_train >= freq:
                    self.since_train -= freq
                    for _ in range(cfg["gradient_steps"]):
                        self.last_loss = self.train_step()
                if self.global_step // every > before // every:
                    with torch.no_grad():
                        torch._foreach_copy_(self.target, self.params)
        return self.global_step - start
