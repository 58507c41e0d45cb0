"""Pixels: tdrl vs Stable-Baselines3 vs a hand-written floor, steady-state training throughput
(env steps/s) of PPO and DQN.

Run: ``PYTHONPATH=. python benchmarks/pixels.py [--envs minatar,atari] [--algos ppo,dqn]
[--sides tdrl,sb3,hand] [--rounds 3] [--scale 1] [--clock thread|wall] [--profile]`` (the
``bench`` extra: SB3 and ``opencv-python-headless`` for its Atari wrappers).

The three sides (``--sides`` picks some; all three by default):

- ``tdrl``: tdrl's algorithm object (what ``tdrl train`` runs, without a run directory);
- ``sb3``: SB3's model with the same hyperparameters and network, on SB3's own envs;
- ``hand``: the floor, ``benchmarks/pixels_by_hand.py``: PPO and DQN written by hand in plain
  torch (CleanRL's ``ppo_atari.py`` / ``dqn_atari.py`` with tdrl's network and settings, and
  every cheap trick that keeps the math: NHWC convolutions, in-place activations, one matmul
  for both heads' first layers, a bare fused Adam, ``numpy`` storage), on tdrl's own training
  vector env (``make_vec_env``), so the env costs tdrl and it the same. Its network is checked
  to have tdrl's parameter count before timing, and its last losses to be finite after the
  warm-up (``tests/test_pixels_bench.py`` checks its outputs against tdrl's network).

For each (algo, env) row, in one process and on one torch thread:

1. every side is built (not timed);
2. each is warmed up: DQN collects ``--learning-starts`` (1,000) env steps with the same
   ``learning_starts`` on every side, then trains for half a block; PPO runs one whole
   iteration (rollout + update);
3. they then train for ``--rounds`` alternating blocks (tdrl, SB3, hand, hand, SB3, tdrl, ...)
   of the same number of env steps: PPO in whole iterations (8 x 128 = 1,024 env steps,
   rollout + update), DQN entirely after ``learning_starts`` so its gradient steps are in at
   the recipe's ratio. Nothing else is timed (no evaluation, no run directory, no checkpoint).
   A block is timed in CPU time of this thread (``--clock thread``, the default: the envs are
   stepped in this thread on every side, gymnasium's ``SyncVectorEnv`` / SB3's
   ``DummyVecEnv``, and other processes on the shared machine disturb it less than wall time)
   or in wall time (``--clock wall``, for a vector env stepping in other threads or
   processes). The rate of a side is its median block; the ratios are tdrl / SB3, hand / SB3
   (the most any implementation of this training on this network could gain on SB3, short
   of doing less compute) and tdrl / hand (what tdrl loses to the floor).

Settings (tdrl's per-family defaults, ``ENV_DEFAULTS["ALE/*"]`` / ``["MinAtar/*"]``, read at
run time and given to SB3 and the hand side as the same hyperparameters):

- PPO: 8 envs x 128 steps, 4 epochs x 4 minibatches of 256, lr 2.5e-4 and clip 0.1 annealed,
  entropy 0.01, value 0.5, grad norm 0.5, gamma 0.99, lambda 0.95, Adam eps 1e-5, shared
  trunk; Atari: linear policy and value heads (SB3: ``net_arch=[]``), MinAtar: a 64x64 tanh
  MLP per head (SB3: ``net_arch=dict(pi=[64, 64], vf=[64, 64])``, its default activation);
- DQN: buffer 100k, batch 32, lr 1e-4, Huber loss, grad norm 10, vanilla one-step DQN, target
  copied every 1,000 env steps, epsilon held at its final 0.01 on every side (the schedule's
  value for 90% of a run; SB3 and the hand side skip the network when every env explores,
  tdrl does not); MinAtar: 8 envs, 2 gradient steps per vector step of 8 env steps (SB3
  ``train_freq=1``, ``gradient_steps=2``); Atari: 1 env, 1 gradient step per 4 env steps;
- networks: Atari, Nature CNN (32@8x8/4, 64@4x4/2, 64@3x3/1) + 512, SB3's ``CnnPolicy``
  (``NatureCNN``) with its ``make_atari_env`` (no-ops, skip 4 with max-pool, life loss, fire,
  84x84 grayscale, clipped rewards) + ``VecFrameStack(4)``, tdrl and the hand side with
  tdrl's wrappers (the same steps, sticky actions 0.25 on both); MinAtar, 16@3x3/1 + 128
  (SB3 gets it as its features extractor: ``NatureCNN`` needs >= 36x36 frames) on tdrl's
  channels-first ``uint8`` MinAtar env for all three.

``--profile`` then runs one more block of each side under ``torch.profiler`` and prints the
share of the time in convolutions (forward + backward) and in the dense layers' matmuls (for
tdrl and the hand side also that plus the bare env's steps: what no implementation sheds),
and the costliest tdrl Python frames (cProfile).

The last line is ``pixels: ppo-minatar X.XXx, dqn-minatar X.XXx, ppo-atari X.XXx,
dqn-atari X.XXx`` (tdrl steps/s over SB3's; without one of them, the first other ratio, named);
with the hand side, the line before it is ``pixels floor: ppo-minatar hand/SB3 X.XXx
tdrl/hand X.XXx, ...``.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import math
import os
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

ENV_IDS = {"minatar": "MinAtar/Breakout-v1", "atari": "ALE/Breakout-v5"}
# env steps per timed block at --scale 1 (PPO: whole iterations of 1,024 env steps)
BLOCK = {("ppo", "minatar"): 2048, ("dqn", "minatar"): 2000,
         ("ppo", "atari"): 1024, ("dqn", "atari"): 600}
FINAL_EPS = 0.01

Run = Callable[[int], int]  # run(n): train for at least n more env steps, return the steps done


def _defaults(algo: str, env_id: str) -> dict[str, Any]:
    from tdrl.recipes import get_recipe
    from tdrl.recipes.envs import probe_env

    return dict(get_recipe(algo).defaults_for(env_id, probe_env(env_id).action_space))


def _tdrl_config(algo: str, env_id: str, explicit: dict[str, Any]) -> tuple[Any, Any]:
    """``(recipe, config)``: the recipe's defaults for ``env_id`` under ``explicit``, validated."""
    from tdrl.recipes import get_recipe
    from tdrl.recipes.config import resolve_config
    from tdrl.recipes.envs import probe_env

    recipe = get_recipe(algo)
    env = probe_env(env_id)
    cfg = resolve_config(recipe.config, {"env": env_id, **explicit},
                         recipe.defaults_for(env_id, env.action_space))
    cfg.validate()
    return recipe, cfg


def build_tdrl(algo: str, env_id: str, block: int, learning_starts: int,
               vec: str = "sync") -> tuple[Any, Run]:
    """tdrl's algorithm object at the recipe's defaults (one thread, seed 0) and ``run(n)``."""
    from tdrl.recipes.envs import probe_env
    from tdrl.recipes.rng import seed_everything

    explicit: dict[str, Any] = {"threads": 1, "seed": 0, "vec": vec}
    if algo == "dqn":  # log rows once a block; epsilon held at its final value
        explicit.update(learning_starts=learning_starts, log_every=block, eps_init=FINAL_EPS,
                        eps_end=FINAL_EPS)
    recipe, cfg = _tdrl_config(algo, env_id, explicit)
    seed_everything(0)
    obj = recipe.algorithm(cfg, probe_env(env_id))

    def run(n: int) -> int:
        start = obj.global_step
        while obj.global_step < start + n:
            obj.iterate()
        return obj.global_step - start

    return obj, run


def tdrl_param_count(algo: str, env_id: str) -> int:
    """Parameters of tdrl's network for ``env_id`` at the defaults (PPO: the whole agent)."""
    from tdrl.recipes.envs import probe_env

    _, cfg = _tdrl_config(algo, env_id, {})
    env = probe_env(env_id)
    if algo == "ppo":
        from tdrl.recipes.ppo import build_agent

        net = build_agent(cfg, env.observation_space, env.action_space).agent
    else:
        from tdrl.recipes.dqn import build_qnet

        net = build_qnet(cfg, env.observation_space, env.action_space)
    return sum(p.numel() for p in net.parameters())


def build_hand(algo: str, env_id: str, learning_starts: int, seed: int = 0,
               **overrides: Any) -> tuple[Any, Run]:
    """The hand-written floor (``pixels_by_hand``) with tdrl's defaults for ``env_id`` and
    tdrl's own training vector env (``make_vec_env``), and ``run(n)``. ``overrides`` replace
    defaults (the tests' tiny rollouts)."""
    import numpy as np
    from pixels_by_hand import HandPixelDQN, HandPixelPPO, PixelNet

    from tdrl.recipes.envs import make_vec_env, probe_env
    from tdrl.recipes.trunks import CNN_SPECS, cnn_for, image_layout

    _, cfg = _tdrl_config(algo, env_id, overrides)  # every setting, the defaults filled in
    d = dataclasses.asdict(cfg)
    space = probe_env(env_id).observation_space
    channels_last, shape = image_layout(space.shape)
    name = cnn_for(space) if d.get("cnn", "auto") == "auto" else d["cnn"]
    unsupported = {"channels-last frames": channels_last,
                   "a non-ReLU trunk": d["activation"] != "relu",
                   "the dueling / Double / n-step DQN": algo == "dqn" and (
                       d.get("dueling") or d.get("double_dqn") or d.get("n_step", 1) != 1
                       or d.get("tau", 1.0) != 1.0)}
    bad = [k for k, v in unsupported.items() if v]
    if bad:
        raise ValueError(f"the hand-written {algo} does not do {', '.join(bad)} ({env_id})")
    spec = CNN_SPECS[name]
    convs = list(zip(spec["num_cells"], spec["kernel_sizes"], spec["strides"]))
    high = float(np.max(space.high))
    high = high if 0 < high < 256 else 255.0  # as tdrl's ScaleFrames
    torch.manual_seed(seed)
    net = PixelNet(shape, convs, tuple(d["hidden"]), high, nhwc=name == "nature",
                   gain=2 ** 0.5 if algo == "ppo" else None)  # tdrl: NHWC for the Nature CNN
    envs = make_vec_env(env_id, d["num_envs"])
    n_actions = int(envs.single_action_space.n)
    if algo == "ppo":
        obj: Any = HandPixelPPO(d, net, n_actions, envs, seed=seed)
    else:
        d.update(learning_starts=learning_starts, eps=FINAL_EPS)
        obj = HandPixelDQN(d, net, n_actions, envs, seed=seed)
    return obj, obj.run


def minatar_extractor(base: type) -> type:
    """SB3 features extractor with tdrl's MinAtar trunk: 16@3x3/1 + ReLU, then 128 + ReLU."""

    class MinAtarCNN(base):
        def __init__(self, observation_space: Any, features_dim: int = 128) -> None:
            super().__init__(observation_space, features_dim)
            c, h, w = observation_space.shape
            self.cnn = nn.Sequential(nn.Conv2d(c, 16, 3), nn.ReLU(), nn.Flatten())
            self.linear = nn.Sequential(nn.Linear(16 * (h - 2) * (w - 2), features_dim), nn.ReLU())

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.linear(self.cnn(obs))

    return MinAtarCNN


def _sb3_envs(env_id: str, n: int, seed: int) -> Any:
    from stable_baselines3.common.env_util import make_atari_env, make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    if env_id.startswith("ALE/"):
        from tdrl.recipes.atari import import_ale

        import_ale()
        envs = make_atari_env(env_id, n_envs=n, seed=seed,
                              env_kwargs={"frameskip": 1, "repeat_action_probability": 0.25})
        return VecFrameStack(envs, 4)
    from tdrl.recipes.minatar_env import make_minatar_env

    return make_vec_env(lambda: make_minatar_env(env_id), n_envs=n, seed=seed)


def build_sb3(algo: str, env_id: str, learning_starts: int) -> tuple[Any, Run]:
    """SB3's PPO / DQN with tdrl's settings for ``env_id`` and ``run(n)`` (``learn`` continued)."""
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    d = _defaults(algo, env_id)
    # tdrl's heads on the shared features: linear (net_arch=[]), or an MLP per head (MinAtar PPO)
    heads = list(d.get("head_hidden", ()))
    policy_kwargs: dict[str, Any] = {"net_arch": {"pi": heads, "vf": heads} if heads else []}
    if heads:
        policy_kwargs["activation_fn"] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}[
            d.get("head_activation") or d["activation"]]
    if env_id.startswith("MinAtar/"):
        policy_kwargs.update(features_extractor_class=minatar_extractor(BaseFeaturesExtractor),
                             features_extractor_kwargs={"features_dim": d["hidden"][-1]},
                             normalize_images=False)  # 0/1 planes, as tdrl's high of 1
    envs = _sb3_envs(env_id, d["num_envs"], seed=0)
    if algo == "ppo":
        model = PPO(
            "CnnPolicy", envs, n_steps=d["n_steps"], batch_size=d["batch_size"],
            n_epochs=d["epochs"], learning_rate=lambda f: f * d["lr"],
            clip_range=(lambda f: f * d["clip"]) if d["anneal_clip"] else d["clip"],
            ent_coef=d["ent_coef"], vf_coef=d["vf_coef"], max_grad_norm=d["max_grad_norm"],
            gamma=d["gamma"], gae_lambda=d["gae_lambda"], policy_kwargs=policy_kwargs,
            device="cpu", seed=0,
        )
    else:
        model = DQN(
            "CnnPolicy", envs, buffer_size=d["buffer_size"], learning_rate=d["lr"],
            batch_size=d["batch_size"], learning_starts=learning_starts,
            train_freq=max(1, d["train_freq"] // d["num_envs"]),  # SB3 counts vector steps
            gradient_steps=d["gradient_steps"], target_update_interval=d["target_update"],
            exploration_initial_eps=FINAL_EPS, exploration_final_eps=FINAL_EPS,
            gamma=d["gamma"], max_grad_norm=d["max_grad_norm"], policy_kwargs=policy_kwargs,
            optimize_memory_usage=False, device="cpu", seed=0,
        )

    def run(n: int) -> int:
        start = model.num_timesteps
        model.learn(n, reset_num_timesteps=False)
        return model.num_timesteps - start

    return model, run


def clock_fn(name: str) -> Callable[[], float]:
    return time.thread_time if name == "thread" else time.perf_counter


def alternate(runs: dict[str, Run], block: int, rounds: int, clock: str) -> dict[str, float]:
    """Median env steps/s of each side over ``rounds`` alternating blocks of ``block`` steps."""
    now = clock_fn(clock)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            t0 = now()
            steps = runs[name](block)
            rates[name].append(steps / (now() - t0))
    return {name: statistics.median(v) for name, v in rates.items()}


# -- profiles -------------------------------------------------------------------------------
CONV = ("conv",)  # aten::mkldnn_convolution, aten::convolution_backward, ...
MATMUL = ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul")


def op_shares(run: Run, n: int) -> dict[str, float]:
    """Shares of a block's profiled CPU time in convolution ops and in matmuls (self times)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        run(n)
        total = (time.perf_counter() - t0) * 1e6
    conv = matmul = 0.0
    for e in prof.key_averages():
        if any(s in e.key for s in CONV):
            conv += e.self_cpu_time_total
        elif e.key in MATMUL:
            matmul += e.self_cpu_time_total
    return {"conv": conv / total, "matmul": matmul / total}


def env_seconds_per_step(env_id: str, n_envs: int, steps: int, clock: str) -> float:
    """Seconds per env step of tdrl's bare vector env with random actions (the env's own cost)."""
    import numpy as np

    from tdrl.recipes.envs import make_vec_env

    envs = make_vec_env(env_id, n_envs)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    n_actions = envs.single_action_space.n
    now = clock_fn(clock)
    t0 = now()
    for _ in range(max(1, steps // n_envs)):
        envs.step(rng.integers(0, n_actions, n_envs))
    elapsed = now() - t0
    envs.close()
    return elapsed / (max(1, steps // n_envs) * n_envs)


def top_frames(run: Run, n: int, k: int = 12) -> list[str]:
    """The costliest Python frames of a block by cumulative time (cProfile)."""
    prof = cProfile.Profile()
    prof.enable()
    run(n)
    prof.disable()
    stats = pstats.Stats(prof).stats
    total = max(v[3] for v in stats.values())
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:k]  # by own time
    return [f"{f[2]} ({os.path.basename(f[0])}:{f[1]}) own {v[2] / total:.0%}" for f, v in rows]


# -- main -----------------------------------------------------------------------------------
SIDES = ("tdrl", "sb3", "hand")
LABEL = {"tdrl": "tdrl", "sb3": "SB3", "hand": "hand"}
RATIOS = (("tdrl", "sb3"), ("hand", "sb3"), ("tdrl", "hand"))  # (numerator, denominator)


def build_side(side: str, algo: str, env_id: str, block: int,
               args: argparse.Namespace) -> tuple[Any, Run, Callable[[], None]]:
    """``(object, run, close)`` of one side of a row."""
    if side == "tdrl":
        obj, run = build_tdrl(algo, env_id, block, args.learning_starts, args.vec)
        return obj, run, obj.close
    if side == "sb3":
        obj, run = build_sb3(algo, env_id, args.learning_starts)
        return obj, run, lambda: obj.get_env().close()
    obj, run = build_hand(algo, env_id, args.learning_starts)
    n_hand, n_tdrl = sum(p.numel() for p in obj.params), tdrl_param_count(algo, env_id)
    if n_hand != n_tdrl:
        raise AssertionError(f"{algo} {env_id}: the hand network has {n_hand:,} parameters, "
                             f"tdrl's {n_tdrl:,}")
    return obj, run, obj.envs.close


def time_row(algo: str, family: str, args: argparse.Namespace) -> dict[str, Any]:
    env_id = ENV_IDS[family]
    block = max(1, int(BLOCK[(algo, family)] * args.scale))
    built = {side: build_side(side, algo, env_id, block, args) for side in args.sides}
    runs = {side: run for side, (_, run, _) in built.items()}
    for run in runs.values():  # warm-up: past learning_starts (DQN), one whole iteration (PPO)
        run(args.learning_starts + block // 2 if algo == "dqn" else 1)
    if "hand" in built:  # the floor's math ran: its last losses are numbers
        hand = built["hand"][0]
        last = hand.last if algo == "ppo" else {"loss": float(hand.last_loss)}
        if not all(math.isfinite(v) for v in last.values()):
            raise FloatingPointError(f"hand-written {algo} on {env_id}: {last}")
    rates = alternate(runs, block, args.rounds, args.clock)
    row: dict[str, Any] = {"algo": algo, "env": env_id, "block": block, **rates,
                           "load": os.getloadavg()[0]}
    for a, b in RATIOS:
        if a in rates and b in rates:
            row[f"{a}/{b}"] = rates[a] / rates[b]
    print(f"  {algo} {env_id}: " + ", ".join(f"{LABEL[k]} {v:.1f}" for k, v in rates.items())
          + " steps/s -> " + ", ".join(f"{ratio_label(k)} {row[k]:.2f}x"
                                       for k in (f"{a}/{b}" for a, b in RATIOS) if k in row)
          + f" (blocks of {block} env steps, load {row['load']:.1f})", flush=True)
    if args.profile:
        env_share = env_seconds_per_step(env_id, _defaults(algo, env_id)["num_envs"], block,
                                         args.clock)
        for name, run in runs.items():
            s = op_shares(run, block)
            print(f"    {LABEL[name]} profile: convolutions {s['conv']:.0%}, dense matmuls "
                  f"{s['matmul']:.0%} of the block", flush=True)
            if name in ("tdrl", "hand"):  # what it could not shed: the network's ops and the env
                share = env_share * rates[name]
                floor = s["conv"] + s["matmul"] + share
                vs = (f"; {LABEL[name]} / SB3 at most {row[f'{name}/sb3'] / floor:.2f}x with "
                      "everything else free") if f"{name}/sb3" in row else ""
                print(f"    {LABEL[name]}'s floor: convolutions + matmuls + bare env steps "
                      f"({share:.0%}) = {floor:.0%} of its time{vs}", flush=True)
        if "tdrl" in runs:
            print("    tdrl Python frames by own time: " + "; ".join(
                top_frames(runs["tdrl"], block)), flush=True)
    for _, _, close in built.values():
        close()
    return row


def ratio_label(key: str) -> str:
    """``"tdrl/sb3"`` -> ``"tdrl/SB3"``."""
    a, b = key.split("/")
    return f"{LABEL[a]}/{LABEL[b]}"


def last_line(rows: list[dict[str, Any]]) -> str:
    """``pixels: ppo-minatar X.XXx, ...``: tdrl / SB3 per row (else the first ratio there is)."""
    family = {v: k for k, v in ENV_IDS.items()}
    key = next((f"{a}/{b}" for a, b in RATIOS if all(f"{a}/{b}" in r for r in rows)), None)
    if key is None:
        return "pixels: no ratio (one side only)"
    head = "pixels: " if key == "tdrl/sb3" else f"pixels ({ratio_label(key)}): "
    return head + ", ".join(f"{r['algo']}-{family[r['env']]} {r[key]:.2f}x" for r in rows)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", default="minatar,atari", help="comma-separated: minatar, atari")
    p.add_argument("--algos", default="ppo,dqn", help="comma-separated: ppo, dqn")
    p.add_argument("--sides", default=",".join(SIDES),
                   help="comma-separated: tdrl, sb3, hand (the hand-written floor)")
    p.add_argument("--rounds", type=int, default=3, help="timed blocks per side")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every block's env steps")
    p.add_argument("--learning-starts", type=int, default=1_000,
                   help="DQN: env steps before learning, every side (the timing starts after)")
    p.add_argument("--clock", choices=["thread", "wall"], default="thread",
                   help="thread CPU time (envs stepped in this thread) or wall time")
    p.add_argument("--profile", action="store_true",
                   help="profile one more block of each side (op shares, Python frames)")
    p.add_argument("--vec", choices=["sync", "envpool"], default="sync",
                   help="tdrl's training vector env (envpool: Atari ids; its emulators step in "
                        "their own threads, so time it with --clock wall)")
    args = p.parse_args(argv)
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    bad = [s for s in args.sides if s not in SIDES]
    if bad or not args.sides or len(set(args.sides)) != len(args.sides):
        p.error(f"--sides {','.join(args.sides)}: name each of {', '.join(SIDES)} at most once")
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; {args.clock} time, median of {args.rounds} blocks per side",
          flush=True)
    rows = [time_row(algo, family, args)
            for family in args.envs.split(",") for algo in args.algos.split(",")]
    sides = [s for s in SIDES if s in args.sides]
    ratios = [f"{a}/{b}" for a, b in RATIOS if a in sides and b in sides]
    print(f"{'algo':5} {'env':22} {'block':>6} "
          + " ".join(f"{LABEL[s] + ' steps/s':>13}" for s in sides)
          + " " + " ".join(f"{ratio_label(k):>9}" for k in ratios) + f" {'load':>5}")
    for r in rows:
        print(f"{r['algo']:5} {r['env']:22} {r['block']:6d} "
              + " ".join(f"{r[s]:13.1f}" for s in sides) + " "
              + " ".join(f"{r[k]:9.2f}" for k in ratios) + f" {r['load']:5.1f}")
    if "hand" in sides and len(sides) > 1:
        family = {v: k for k, v in ENV_IDS.items()}
        print("pixels floor: " + ", ".join(
            f"{r['algo']}-{family[r['env']]} " + " ".join(
                f"{ratio_label(k)} {r[k]:.2f}x"
                for k in ratios if "hand" in k) for r in rows))
    print(last_line(rows))
    return rows


if __name__ == "__main__":
    main()
