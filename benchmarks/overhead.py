"""Per-call overhead of tdrl modules against hand-written torch doing the same math.

Run: ``.venv/bin/python benchmarks/overhead.py`` (or ``make bench``).

Every case is timed in this one process, at batch 1 and 256, with one torch
thread, timed in CPU time of the calling thread (``time.thread_time``) so that
other processes on the machine disturb the ratio less. The tdrl side builds its input TensorDict inside the timed call; the
torch side receives the raw tensor. Rounds of tdrl and torch calls are
interleaved and the median round is kept, so both see the same machine state.
The printed ratio is tdrl time / torch time (1.00 = no overhead). The last
lines measure ``import tdrl`` on top of ``import tensordict`` in fresh
interpreters.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from tdrl.data import OneHot
from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import (
    ActorValueOperator,
    NormalParamExtractor,
    ProbabilisticActor,
    QValueActor,
    SafeModule,
    SafeSequential,
    TanhNormal,
    ValueOperator,
)

LOG_SQRT_2PI = 0.5 * torch.log(torch.tensor(2 * torch.pi)).item()
LOG2 = torch.log(torch.tensor(2.0)).item()


def _time(fn: Callable[[], object], iters: int) -> float:
    # CPU time of this thread: robust to other processes competing for the cores
    t0 = time.thread_time()
    for _ in range(iters):
        fn()
    return (time.thread_time() - t0) / iters


def compare(ours: Callable[[], object], base: Callable[[], object], iters: int, rounds: int):
    """Median seconds per call of ``ours`` and ``base`` over interleaved rounds."""
    for _ in range(max(iters // 10, 20)):
        ours()
        base()
    a, b = [], []
    for _ in range(rounds):
        a.append(_time(ours, iters))
        b.append(_time(base, iters))
    return statistics.median(a), statistics.median(b)


# --- hand-written torch baselines -------------------------------------------------------
# NormalParamExtractor's default scale map: softplus(x + inv_softplus(1 - 0.01)) + 0.01,
# then clamp_min(scale_lb=1e-4)
_SP_BIAS = torch.expm1(torch.tensor(0.99)).log().item()


def tanh_normal_sample(loc: torch.Tensor, scale: torch.Tensor):
    """rsample of a TanhNormal on [-1, 1] and its log-prob, summed over the last dim."""
    eps = torch.randn_like(loc)
    u = loc + scale * eps
    a = torch.tanh(u)
    lp = -0.5 * eps * eps - scale.log() - LOG_SQRT_2PI
    lp = lp - 2.0 * (LOG2 - u - F.softplus(-2.0 * u))
    return a, lp.sum(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    # 1. SafeSequential of two Linear modules --------------------------------------------
    l1, l2 = nn.Linear(4, 64), nn.Linear(64, 4)
    seq = SafeSequential(
        SafeModule(l1, in_keys=["observation"], out_keys=["hidden"]),
        SafeModule(l2, in_keys=["hidden"], out_keys=["out"]),
    )

    def seq_base(x):
        return l2(l1(x))

    # 2. ProbabilisticActor with TanhNormal ----------------------------------------------
    pnet = nn.Linear(4, 8)
    extractor = NormalParamExtractor()
    actor = ProbabilisticActor(
        TensorDictModule(nn.Sequential(pnet, extractor), ["observation"], ["loc", "scale"]),
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        return_log_prob=True,
    )

    def actor_base(x):
        loc, scale = pnet(x).chunk(2, -1)
        scale = (F.softplus(scale + _SP_BIAS) + 0.01).clamp_min(1e-4)
        return tanh_normal_sample(loc, scale)

    # 3. QValueActor (mission page) ------------------------------------------------------
    qnet = nn.Linear(4, 4)
    qactor = QValueActor(module=qnet, spec=OneHot(4))

    def q_base(x):
        values = qnet(x)
        idx = values.argmax(-1)
        action = F.one_hot(idx, 4)
        chosen = values.gather(-1, idx.unsqueeze(-1))
        return action, values, chosen

    # 4. ActorValueOperator (mission page) -----------------------------------------------
    hidden = nn.Linear(4, 4)
    head = nn.Linear(4, 8)
    value = nn.Linear(4, 1)
    op = ActorValueOperator(
        SafeModule(hidden, in_keys=["observation"], out_keys=["hidden"]),
        ProbabilisticActor(
            TensorDictModule(
                nn.Sequential(head, NormalParamExtractor()), ["hidden"], ["loc", "scale"]
            ),
            in_keys=["loc", "scale"],
            out_keys=["action"],
            distribution_class=TanhNormal,
            return_log_prob=True,
        ),
        ValueOperator(value, in_keys=["hidden"]),
    )
    policy_op = op.get_policy_operator()

    def policy_base(x):
        h = hidden(x)
        loc, scale = head(h).chunk(2, -1)
        scale = (F.softplus(scale + _SP_BIAS) + 0.01).clamp_min(1e-4)
        return h, tanh_normal_sample(loc, scale)

    def op_base(x):
        h, out = policy_base(x)
        return out, value(h)

    cases = [
        ("SafeSequential(Linear, Linear)", seq, seq_base),
        ("ProbabilisticActor(TanhNormal)", actor, actor_base),
        ("QValueActor(Linear(4,4), OneHot(4))", qactor, q_base),
        ("ActorValueOperator (mission example)", op, op_base),
        ("  .get_policy_operator()", policy_op, policy_base),
    ]
    print(
        f"torch {torch.__version__}, 1 thread, median of {args.rounds} rounds x {args.iters} calls"
    )
    print(f"{'case':40s} {'batch':>5s} {'tdrl us':>9s} {'torch us':>9s} {'ratio':>6s}")
    with set_exploration_type(ExplorationType.RANDOM), torch.no_grad():
        for name, module, base in cases:
            for b in args.batches:
                x = torch.randn(b, 4)
                bs = torch.Size([b])

                def ours(module=module, x=x, bs=bs):
                    return module(TensorDict({"observation": x}, batch_size=bs))

                def theirs(base=base, x=x):
                    return base(x)

                t_ours, t_base = compare(ours, theirs, args.iters, args.rounds)
                print(
                    f"{name:40s} {b:5d} {t_ours * 1e6:9.1f} {t_base * 1e6:9.1f} {t_ours / t_base:6.2f}"
                )

    # reference: tensordict's generic module on the same Linear
    x = torch.randn(1, 4)
    tdm = TensorDictModule(l1, in_keys=["observation"], out_keys=["hidden"])
    t_tdm, t_lin = compare(
        lambda: tdm(TensorDict({"observation": x}, batch_size=[1])), lambda: l1(x), args.iters, 5
    )
    print(
        f"{'(ref) tensordict TensorDictModule(Linear)':40s} {1:5d} {t_tdm * 1e6:9.1f} "
        f"{t_lin * 1e6:9.1f} {t_tdm / t_lin:6.2f}"
    )

    code = (
        "import time; import tensordict.nn; t = time.perf_counter(); import tdrl; "
        "print(time.perf_counter() - t)"
    )
    runs = [float(subprocess.check_output([sys.executable, "-c", code])) for _ in range(5)]
    print(
        f"import tdrl after import tensordict: median {statistics.median(runs):.3f} s "
        f"(min {min(runs):.3f} s; target <= 0.2 s)"
    )


if __name__ == "__main__":
    main()
