"""Latency of an exported policy (onnxruntime, torch) against the eager tdrl module and hand-written torch.

Run: ``.venv/bin/python benchmarks/export.py`` (needs the export extra for onnxruntime).

Two policies as the recipes build them: PPO's Pendulum policy operator (trunk
64-64 tanh, head 64 -> loc/scale, TanhNormal on [-2, 2]) and DQN's CartPole
QValueActor (MLP 128-128, greedy action). Each is exported once (``.pt2`` and
``.onnx`` written to a temp dir and loaded back), then every variant is timed
in this one process, at batch 1 and 256, one thread, in CPU time of the
calling thread (``time.thread_time``, as ``overhead.py``), over interleaved
rounds (median kept):

- ``eager``: the tdrl module, TensorDict built in the call, DETERMINISTIC, no grad;
- ``torch``: hand-written torch doing the same math on the raw tensor;
- ``pt2``: the loaded ``torch.export`` program (``ProgramRunner``) on the raw tensor;
- ``ort``: the ``.onnx`` file on onnxruntime (1 intra-op thread), numpy in/out.

The ``ppo-pendulum-f64`` row times the files ``tdrl export`` writes for a
continuous run (``dtype=torch.float64``: float32 in / out, float64 inside, as the
run's final evaluation) against the same float32 eager / hand-written columns.
Ratios are against ``torch`` (1.00 = as fast as hand-written torch).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDict
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from overhead import _time  # noqa: E402  (sibling benchmark script)

from tdrl.data import Bounded, Categorical  # noqa: E402
from tdrl.envs.utils import ExplorationType, set_exploration_type  # noqa: E402
from tdrl.export import ProgramRunner, export_policy  # noqa: E402
from tdrl.export.onnx import onnx_session  # noqa: E402
from tdrl.modules import (  # noqa: E402
    MLP,
    ActorValueOperator,
    NormalParamExtractor,
    ProbabilisticActor,
    QValueActor,
    SafeModule,
    TanhNormal,
    ValueOperator,
)


def ppo_pendulum() -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor], int]:
    trunk = MLP(in_features=3, out_features=64, num_cells=[64], activation_class=nn.Tanh,
                activate_last_layer=True)
    head = MLP(in_features=64, out_features=2, num_cells=[64], activation_class=nn.Tanh)
    low, high = torch.tensor([-2.0]), torch.tensor([2.0])
    policy = ProbabilisticActor(
        SafeModule(nn.Sequential(head, NormalParamExtractor()), in_keys=["hidden"],
                   out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], distribution_class=TanhNormal,
        distribution_kwargs={"low": low, "high": high}, return_log_prob=True,
        spec=Bounded(low, high, shape=(1,)),
    )
    op = ActorValueOperator(SafeModule(trunk, in_keys=["observation"], out_keys=["hidden"]),
                            policy, ValueOperator(nn.Linear(64, 1), in_keys=["hidden"]))

    def base(x: torch.Tensor) -> torch.Tensor:  # the deterministic action: 2 tanh(loc)
        return 2.0 * torch.tanh(head(trunk(x))[..., :1])

    return op.get_policy_operator().eval(), base, 3


def dqn_cartpole() -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor], int]:
    mlp = MLP(in_features=4, out_features=2, num_cells=[128, 128], activation_class=nn.ReLU)
    qnet = QValueActor(mlp, in_keys=["observation"], spec=Categorical(2))

    def base(x: torch.Tensor) -> torch.Tensor:
        return mlp(x).argmax(-1)

    return qnet.eval(), base, 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    print(f"torch {torch.__version__}, 1 thread, median of {args.rounds} rounds x "
          f"{args.iters} calls; microseconds per call, ratio vs hand-written torch")
    print(f"{'policy':16s} {'batch':>5s} {'eager':>8s} {'torch':>8s} {'pt2':>8s} {'ort':>8s} "
          f"{'eager/t':>7s} {'pt2/t':>6s} {'ort/t':>6s}")
    policies = [("ppo-pendulum", ppo_pendulum, None), ("ppo-pendulum-f64", ppo_pendulum,
                torch.float64), ("dqn-cartpole", dqn_cartpole, None)]
    for name, build, dtype in policies:
        torch.manual_seed(0)
        module, base, obs_dim = build()
        exported = export_policy(module, torch.zeros(1, obs_dim), dtype=dtype)
        runner = ProgramRunner(torch.export.load(str(exported.save(tmp / f"{name}.pt2"))))

        def pt2(x, runner=runner):
            return runner(x)[0]

        session = onnx_session(exported.save(tmp / f"{name}.onnx"), threads=1)
        in_name = session.get_inputs()[0].name
        for b in args.batches:
            x = torch.randn(b, obs_dim)
            xn = x.numpy()
            bs = torch.Size([b])
            with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
                ref = module(TensorDict({"observation": x}, batch_size=bs))["action"]
                if dtype is None:
                    assert torch.equal(pt2(x), ref)
                else:
                    torch.testing.assert_close(pt2(x), ref, rtol=0, atol=1e-5)
                assert torch.allclose(base(x).to(ref.dtype), ref, atol=1e-6)
            assert np.allclose(session.run(None, {in_name: xn})[0], ref.numpy(), atol=1e-5)

            def eager(module=module, x=x, bs=bs):
                with set_exploration_type(ExplorationType.DETERMINISTIC):
                    return module(TensorDict({"observation": x}, batch_size=bs))["action"]

            variants = {
                "eager": eager,
                "torch": lambda x=x, f=base: f(x),
                "pt2": lambda x=x, f=pt2: f(x),
                "ort": lambda feed={in_name: xn}, s=session: s.run(None, feed),
            }
            for fn in variants.values():  # warm-up
                for _ in range(max(args.iters // 10, 20)):
                    fn()
            times: dict[str, list[float]] = {k: [] for k in variants}
            with torch.no_grad():
                for _ in range(args.rounds):
                    for k, fn in variants.items():
                        times[k].append(_time(fn, args.iters))
            us = {k: statistics.median(v) * 1e6 for k, v in times.items()}
            t = us["torch"]
            print(f"{name:16s} {b:5d} {us['eager']:8.1f} {t:8.1f} {us['pt2']:8.1f} "
                  f"{us['ort']:8.1f} {us['eager'] / t:7.2f} {us['pt2'] / t:6.2f} "
                  f"{us['ort'] / t:6.2f}")


if __name__ == "__main__":
    main()
