"""Peak resident memory of DQN's replay of 100k Atari transitions (issue 20: <= 4 GB).

Fills a :class:`~tdrl.recipes.frame_replay.FrameReplay` (what ``tdrl train dqn``
uses for ``ALE/...`` ids) with ``--transitions`` transitions of stacked
``uint8 [4, 84, 84]`` observations, as DQN stores them (observation, action,
reward, next observation, terminated, discount), then samples from it, and
prints the process's peak RSS next to what storing both stacks of every
transition would take. ``--source atari`` plays ``ALE/Breakout-v5`` (the
training variant, random actions) for the frames; ``--source synthetic`` (the
default, fast) shifts random frames through 4-frame stacks with episodes of
``--episode`` steps, as the frame stacking does.

    PYTHONPATH=. python benchmarks/replay_memory.py [--transitions 100000] [--source synthetic|atari]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import torch
from tensordict import TensorDict


def _rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def _synthetic(n: int, episode: int, seed: int):
    rng = np.random.default_rng(seed)
    stack = np.repeat(rng.integers(0, 256, (1, 84, 84), dtype=np.uint8), 4, axis=0)
    for t in range(n):
        nxt = np.concatenate([stack[1:], rng.integers(0, 256, (1, 84, 84), dtype=np.uint8)])
        end = (t + 1) % episode == 0
        yield stack, nxt, end
        stack = np.repeat(rng.integers(0, 256, (1, 84, 84), dtype=np.uint8), 4, 0) if end else nxt


def _atari(n: int, seed: int):
    from tdrl.recipes.atari import make_atari_env

    env = make_atari_env("ALE/Breakout-v5", train=True)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        nxt, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        yield obs, nxt, term or trunc
        obs = env.reset()[0] if term or trunc else nxt


def main(argv: list[str] | None = None) -> dict:
    from tdrl.recipes.frame_replay import FrameReplay

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transitions", type=int, default=100_000)
    p.add_argument("--source", choices=["synthetic", "atari"], default="synthetic")
    p.add_argument("--episode", type=int, default=200, help="synthetic episode length")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    base = _rss_mb()
    rb = FrameReplay(args.transitions)
    stream = (_synthetic(args.transitions, args.episode, args.seed) if args.source == "synthetic"
              else _atari(args.transitions, args.seed))
    start = time.perf_counter()
    for obs, nxt, end in stream:
        rb.add(TensorDict(
            observation=torch.from_numpy(obs)[None], next_observation=torch.from_numpy(nxt)[None],
            action=torch.zeros(1, dtype=torch.long), reward=torch.zeros(1),
            terminated=torch.tensor([bool(end)]), discount=torch.full((1,), 0.99),
            batch_size=[1],
        ))
    fill_s = time.perf_counter() - start
    for _ in range(100):
        rb.sample(32)
    naive = args.transitions * 2 * 4 * 84 * 84 / 2**20
    result = {
        "transitions": len(rb),
        "frames_stored": min(rb.frames_written, rb.num_frames),
        "frame_slots": rb.num_frames,
        "peak_rss_mb": round(_rss_mb(), 1),
        "rss_before_mb": round(base, 1),
        "both_stacks_per_transition_mb": round(naive, 1),
        "fill_s": round(fill_s, 1),
        "source": args.source,
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
