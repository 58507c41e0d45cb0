"""Does ``torch.compile`` pay off for the recipes' updates and acting at their default budgets?

Run: ``.venv/bin/python benchmarks/compile_bench.py`` (several minutes, mostly compiling; one thread).

For each recipe at its defaults (PPO and DQN on CartPole-v1, SAC on Pendulum-v1) it takes
the recipe's own hot path, the tensor functions of :mod:`tdrl.recipes.fastpath` (PPO's
minibatch loss, DQN's TD loss, SAC's three losses, each forward + backward; and PPO's / DQN's
acting forward), and times

1. the compile: wall seconds and CPU seconds (this process and inductor's compile workers)
   of the first calls of ``torch.compile(fn)`` (forward and the backward graph);
2. the steady state: thread CPU ms per call, eager against compiled, in alternating blocks
   (median block), after warm-up;

then the end-to-end verdict at the default budget: calls per run (PPO: 20 epochs x
391 rollouts of 100k steps; DQN: 25,000 gradient steps and 12,500 acting steps; SAC:
19,900 updates) x the per-call saving, against the compile CPU time (the optimizer step
and the target update stay eager in both). ``torch.compile`` is worth
turning on by default only where the saving exceeds the compile time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from floor_checks import build, fill  # noqa: E402

from tdrl.recipes import ppo_calls  # noqa: E402
from tdrl.recipes.sac import TanhNormal  # noqa: E402


def ppo_case() -> tuple[dict[str, Callable[[], object]], dict[str, int]]:
    algo = build("ppo", "CartPole-v1", 0)
    batch = algo.collect().reshape(-1)
    fast = algo.calls  # TensorCalls: the recipe's own agent as tensor functions
    obs, action = batch["observation"], batch["action"].unsqueeze(-1)
    old, adv, target = batch["sample_log_prob"], batch["advantage"], batch["value_target"]

    def loss(obs, act, old, adv, target):
        hidden = fast.trunk(obs)
        logp = ppo_calls._normalized(fast.logits(hidden))
        ratio = (logp.gather(-1, act).squeeze(-1) - old).exp()
        value = fast.value_fn(hidden).reshape(-1)
        policy = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean()
        return policy + 0.5 * (target - value).pow(2).mean()

    def act(obs):
        hidden = fast.trunk(obs)
        return ppo_calls._normalized(fast.logits(hidden)), fast.value_fn(hidden)

    obs8 = obs[:8]
    calls = {"update step": 20 * 391, "acting step": 100_000 // 8}
    return {"update step": lambda f: f(obs, action, old, adv, target).backward(),
            "acting step": lambda f: f(obs8)}, {"update step": loss, "acting step": act}, calls


def dqn_case():
    algo = build("dqn", "CartPole-v1", 0)
    fill(algo, 1_000)
    b = algo.buffer.sample_tensors(64)
    q_fn, t_fn = algo.q_fn, algo.target_q_fn

    def loss(obs, next_obs, action, reward, discount, terminated):
        q_both = q_fn(torch.cat([obs, next_obs]))
        next_action = q_both[64:].detach().argmax(-1, keepdim=True)
        with torch.no_grad():
            next_q = t_fn(next_obs).gather(-1, next_action).squeeze(-1)
            y = reward + discount * (~terminated).float() * next_q
        q = q_both[:64].gather(-1, action.unsqueeze(-1)).squeeze(-1)
        return torch.nn.functional.smooth_l1_loss(q, y)

    def act(obs):
        return q_fn(obs).argmax(-1)

    args = [b[k] for k in ("observation", "next_observation", "action", "reward", "discount",
                           "terminated")]
    obs4 = b["observation"][:4]
    calls = {"update step": 50_000 // 256 * 128, "acting step": 50_000 // 4}
    return {"update step": lambda f: f(*args).backward(), "acting step": lambda f: f(obs4)}, \
        {"update step": loss, "acting step": act}, calls


def sac_case():
    algo = build("sac", "Pendulum-v1", 0)
    fill(algo, 1_000)
    b = algo.buffer.sample_tensors(256)
    actor, twin, target_twin, _ = algo.fast
    bounds, log_alpha = algo.bounds, algo.log_alpha

    def loss(obs, next_obs, action, reward, terminated):
        alpha = log_alpha.detach().exp()
        loc, scale = actor(obs)
        a_pi, lp = TanhNormal(loc, scale, **bounds).rsample_and_log_prob()
        with torch.no_grad():
            nloc, nscale = actor(next_obs)
            a_n, lp_n = TanhNormal(nloc, nscale, **bounds).rsample_and_log_prob()
            y = reward + 0.99 * (1 - terminated) * (target_twin(next_obs, a_n).min(-1).values
                                                    - alpha * lp_n)
        q = twin(obs, action)
        critic = 0.5 * (q - y.unsqueeze(-1)).pow(2).mean(0).sum()
        actor_loss = (alpha * lp - twin(obs, a_pi).min(-1).values).mean()
        return critic + actor_loss - (log_alpha * (lp.detach() - 1.0)).mean()

    args = [b[k] for k in ("observation", "next_observation", "action", "reward", "terminated")]
    return {"update step": lambda f: f(*args).backward()}, {"update step": loss}, \
        {"update step": 20_000 - 100}


def measure(name: str, case, rounds: int, block: int) -> list[str]:
    runners, fns, calls = case()
    lines = []
    for part, run in runners.items():
        eager = fns[part]
        run(eager)
        t0, c0, k0 = time.perf_counter(), time.process_time(), os.times()
        compiled = torch.compile(eager)
        run(compiled)
        run(compiled)
        compile_s = time.perf_counter() - t0
        k1 = os.times()  # inductor's compile workers are child processes
        compile_cpu = time.process_time() - c0 + (k1.children_user - k0.children_user) + (
            k1.children_system - k0.children_system)
        for _ in range(block):
            run(eager)
            run(compiled)
        per = {"eager": [], "compiled": []}
        for _ in range(rounds):
            for label, f in (("eager", eager), ("compiled", compiled)):
                t = time.thread_time()
                for _ in range(block):
                    run(f)
                per[label].append((time.thread_time() - t) / block * 1e3)
        e, c = statistics.median(per["eager"]), statistics.median(per["compiled"])
        n = calls[part]
        saving_s = n * (e - c) / 1e3
        verdict = "faster end to end" if saving_s > compile_cpu else "slower end to end"
        lines.append(f"{name} {part}: eager {e:.3f} ms, compiled {c:.3f} ms ({e / c:.2f}x); "
                     f"compile {compile_s:.1f} s wall, {compile_cpu:.1f} s CPU; {n:,} calls per "
                     f"default run save {saving_s:.1f} s -> {verdict}")
        print(lines[-1], flush=True)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--algos", default="ppo,dqn,sac", help="comma-separated subset")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, load average {os.getloadavg()[0]:.1f}")
    for name, case in (("ppo", ppo_case), ("dqn", dqn_case), ("sac", sac_case)):
        if name in args.algos.split(","):
            measure(name, case, args.rounds, args.block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
