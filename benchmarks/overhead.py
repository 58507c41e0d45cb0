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
import importlib
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from tdrl import data, modules
from tdrl.envs.utils import ExplorationType, set_exploration_type

LOG_SQRT_2PI = 0.5 * torch.log(torch.tensor(2 * torch.pi)).item()
LOG2 = torch.log(torch.tensor(2.0)).item()


def _time(fn: Callable[[], object], iters: int) -> float:
    # CPU time of this thread: robust to other processes competing for the cores
    t0 = time.thread_time()
    for _ in range(iters):
        fn()
    return (time.thread_time() - t0) / iters


def compare(fns: list[Callable[[], object]], iters: int, rounds: int) -> list[float]:
    """Median seconds per call of each of ``fns`` over interleaved rounds."""
    for _ in range(max(iters // 10, 20)):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, acc in zip(fns, times):
            acc.append(_time(fn, iters))
    return [statistics.median(t) for t in times]


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


class Nets:
    """The networks of every case, shared by the tdrl modules and the torch baselines."""

    def __init__(self) -> None:
        self.l1, self.l2 = nn.Linear(4, 64), nn.Linear(64, 4)
        self.pnet = nn.Linear(4, 8)
        self.qnet = nn.Linear(4, 4)
        self.hidden, self.head, self.value = nn.Linear(4, 4), nn.Linear(4, 8), nn.Linear(4, 1)


def tdrl_cases(lib: types.ModuleType, data: types.ModuleType, n: Nets) -> list[nn.Module]:
    """The mission cases built from ``lib`` (``tdrl.modules`` or a baseline revision's)."""
    seq = lib.SafeSequential(
        lib.SafeModule(n.l1, in_keys=["observation"], out_keys=["hidden"]),
        lib.SafeModule(n.l2, in_keys=["hidden"], out_keys=["out"]),
    )
    actor = lib.ProbabilisticActor(
        TensorDictModule(
            nn.Sequential(n.pnet, lib.NormalParamExtractor()), ["observation"], ["loc", "scale"]
        ),
        in_keys=["loc", "scale"],
        distribution_class=lib.TanhNormal,
        return_log_prob=True,
    )
    qactor = lib.QValueActor(module=n.qnet, spec=data.OneHot(4))
    op = lib.ActorValueOperator(
        lib.SafeModule(n.hidden, in_keys=["observation"], out_keys=["hidden"]),
        lib.ProbabilisticActor(
            TensorDictModule(
                nn.Sequential(n.head, lib.NormalParamExtractor()), ["hidden"], ["loc", "scale"]
            ),
            in_keys=["loc", "scale"],
            out_keys=["action"],
            distribution_class=lib.TanhNormal,
            return_log_prob=True,
        ),
        lib.ValueOperator(n.value, in_keys=["hidden"]),
    )
    return [seq, actor, qactor, op, op.get_policy_operator()]


def torch_cases(n: Nets) -> list[Callable[[torch.Tensor], object]]:
    """Hand-written torch doing each case's math on the raw observation."""

    def seq_base(x):
        return n.l2(n.l1(x))

    def actor_base(x):
        loc, scale = n.pnet(x).chunk(2, -1)
        scale = (F.softplus(scale + _SP_BIAS) + 0.01).clamp_min(1e-4)
        return tanh_normal_sample(loc, scale)

    def q_base(x):
        values = n.qnet(x)
        idx = values.argmax(-1)
        action = F.one_hot(idx, 4)
        chosen = values.gather(-1, idx.unsqueeze(-1))
        return action, values, chosen

    def policy_base(x):
        h = n.hidden(x)
        loc, scale = n.head(h).chunk(2, -1)
        scale = (F.softplus(scale + _SP_BIAS) + 0.01).clamp_min(1e-4)
        return h, tanh_normal_sample(loc, scale)

    def op_base(x):
        h, out = policy_base(x)
        return out, n.value(h)

    return [seq_base, actor_base, q_base, op_base, policy_base]


NAMES = [
    "SafeSequential(Linear, Linear)",
    "ProbabilisticActor(TanhNormal)",
    "QValueActor(Linear(4,4), OneHot(4))",
    "ActorValueOperator (mission example)",
    "  .get_policy_operator()",
]


def recurrent_cases(iters: int, rounds: int, batches: list[int]) -> None:
    """``LSTMModule`` in sequential mode (one env step) against a hand-written ``nn.LSTM`` step.

    Both sides start from the same tensors (observation, ``is_init``, the two
    state tensors), build a TensorDict inside the timed call and leave the
    output and the next state in it: tdrl through ``module(td)``; the
    hand-written step reads the three tensors, calls the same ``nn.LSTM``
    and writes ``feat``, ``("next", "recurrent_state_h")`` and
    ``("next", "recurrent_state_c")`` (it does not reset at ``is_init``).
    The second row times tdrl calling ``nn.LSTM`` as a module, the path
    ``TDRL_COMPAT_FALLBACK=1`` takes, instead of ATen's kernel.
    """
    from tdrl.modules.tensordict_module.core import FastCall

    torch.manual_seed(0)
    lstm = modules.LSTMModule(4, 64, in_key="observation", out_key="feat")
    fallback = modules.LSTMModule(lstm=lstm.lstm, in_key="observation", out_key="feat")
    fallback._call = FastCall(fallback.lstm)
    net = lstm.lstm
    print(f"{'recurrent case (sequential mode)':44s} {'batch':>5s} {'tdrl us':>9s} "
          f"{'hand us':>9s} {'ratio':>6s}")
    for b in batches:
        obs, h, c = torch.randn(b, 4), torch.randn(b, 1, 64), torch.randn(b, 1, 64)
        is_init = torch.zeros(b, 1, dtype=torch.bool)
        bs = torch.Size([b])

        def make(obs=obs, h=h, c=c, is_init=is_init, bs=bs):
            return TensorDict({"observation": obs, "is_init": is_init, "recurrent_state_h": h,
                               "recurrent_state_c": c}, batch_size=bs)

        def hand(make=make):
            td = make()
            x, h0, c0 = td["observation"], td["recurrent_state_h"], td["recurrent_state_c"]
            y, (h1, c1) = net(x.unsqueeze(1), (h0.transpose(0, 1), c0.transpose(0, 1)))
            td["feat"] = y.squeeze(1)
            td["next", "recurrent_state_h"] = h1.transpose(0, 1)
            td["next", "recurrent_state_c"] = c1.transpose(0, 1)
            return td

        t_ours, t_fb, t_hand = compare(
            [lambda make=make: lstm(make()), lambda make=make: fallback(make()), hand],
            iters, rounds)
        for name, t in (("LSTMModule(4, 64) step vs nn.LSTM step", t_ours),
                        ("  same, nn.LSTM called as a module", t_fb)):
            print(f"{name:44s} {b:5d} {t * 1e6:9.1f} {t_hand * 1e6:9.1f} {t / t_hand:6.2f}")


def load_baseline(rev: str) -> tuple[types.ModuleType, types.ModuleType]:
    """Imports tdrl as of git revision ``rev`` under the name ``tdrl_base``.

    The revision's ``tdrl/`` is extracted with ``git archive`` into a temporary
    directory and its absolute imports renamed, so both versions run in this
    one process and are timed in the same interleaved rounds.
    """
    root = pathlib.Path(__file__).resolve().parent.parent
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="tdrl-base-"))
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", rev, "tdrl"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    (tmp / "tdrl").rename(tmp / "tdrl_base")
    pattern = re.compile(r"\b(from|import) tdrl\b|\"tdrl\.")
    for path in (tmp / "tdrl_base").rglob("*.py"):
        text = path.read_text()
        new = pattern.sub(
            lambda m: '"tdrl_base.' if m.group(0).startswith('"') else f"{m.group(1)} tdrl_base",
            text,
        )
        if new != text:
            path.write_text(new)
    sys.path.insert(0, str(tmp))
    return importlib.import_module("tdrl_base.modules"), importlib.import_module("tdrl_base.data")


def new_paths(n: Nets, iters: int, rounds: int) -> None:
    """Cost of the compatibility paths, each against the plain ``module(td)`` call at batch 1."""
    x = torch.randn(1, 4)
    seq = tdrl_cases(modules, data, n)[0]
    make = lambda: TensorDict({"observation": x}, batch_size=[1])  # noqa: E731
    head = TensorDictModule(
        nn.Sequential(n.pnet, modules.NormalParamExtractor()), ["observation"], ["loc", "scale"]
    )
    kw = dict(in_keys=["loc", "scale"], distribution_class=modules.TanhNormal)
    actor = modules.ProbabilisticActor(head, **kw)
    seeded = modules.ProbabilisticActor(head, generator=torch.Generator().manual_seed(0), **kw)
    q = modules.QValueActor(module=n.qnet, spec=data.OneHot(4))
    qm = modules.QValueActor(module=n.qnet, spec=data.OneHot(4), action_mask_key="action_mask")
    mask = torch.ones(1, 4, dtype=torch.bool)
    pairs = [
        ("SafeSequential: seq(x) positional tensor", lambda: seq(make()), lambda: seq(x)),
        ("ProbabilisticActor: generator=Generator", lambda: actor(make()), lambda: seeded(make())),
        (
            "QValueActor: action_mask_key",
            lambda: q(make()),
            lambda: qm(TensorDict({"observation": x, "action_mask": mask}, batch_size=[1])),
        ),
    ]
    print(f"{'compatibility path (batch 1)':44s} {'td call us':>10s} {'path us':>9s} {'ratio':>6s}")
    for name, plain, path in pairs:
        t_plain, t_path = compare([plain, path], iters, rounds)
        print(f"{name:44s} {t_plain * 1e6:10.1f} {t_path * 1e6:9.1f} {t_path / t_plain:6.2f}")


# --- multi-agent networks (issue 18, marl) -----------------------------------------------
class StackedAgentsMLP(nn.Module):
    """The hand-written module: 8 agents' MLPs as stacked weights, one batched matmul per layer.

    With per-agent weights ``[agents, out, in]`` the agents are moved to the front, each
    layer is one ``baddbmm`` and the agents are moved back; with shared weights each layer
    is ``F.linear`` on ``[batch, agents, features]``. It holds the MultiAgentMLP's own
    weight tensors, so both compute the same values.
    """

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], share: bool) -> None:
        super().__init__()
        self.layers, self.share = layers, share

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (w0, b0), (w1, b1), (w2, b2) = self.layers
        if self.share:
            return F.linear(torch.tanh(F.linear(torch.tanh(F.linear(x, w0, b0)), w1, b1)), w2, b2)
        h = x.transpose(0, 1)
        h = torch.tanh(torch.baddbmm(b0.unsqueeze(1), h, w0.transpose(1, 2)))
        h = torch.tanh(torch.baddbmm(b1.unsqueeze(1), h, w1.transpose(1, 2)))
        return torch.baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2)).transpose(0, 1)


def multiagent_cases(iters: int, rounds: int, batches: list[int]) -> None:
    """``MultiAgentMLP`` (8 agents, 16 -> 64 -> 64 -> 4, Tanh) against :class:`StackedAgentsMLP`."""
    n_agents, n_in, n_out = 8, 16, 4
    print(f"{'multi-agent network':38s} {'batch':>5s}{'tdrl us':>14s} {'torch us':>9s}  ratio")
    for share in (False, True):
        mlp = modules.MultiAgentMLP(
            n_in, n_out, n_agents, centralized=False, share_params=share, depth=2, num_cells=64
        )
        layers = [(mlp.params[str(i), "weight"], mlp.params[str(i), "bias"]) for i in (0, 2, 4)]
        by_hand = StackedAgentsMLP(layers, share)
        name = f"MultiAgentMLP(8 agents, {'shared' if share else 'independent'})"
        for b in batches:
            x = torch.randn(b, n_agents, n_in)
            torch.testing.assert_close(mlp(x), by_hand(x))
            t_ours, t_base = compare(
                [lambda mlp=mlp, x=x: mlp(x), lambda x=x, f=by_hand: f(x)], iters, rounds
            )
            print(f"{name:38s} {b:5d}{t_ours * 1e6:14.1f} {t_base * 1e6:9.1f}  {t_ours / t_base:.2f}")
def _calibrated_iters(fn: Callable[[], object], seconds: float = 0.05) -> int:
    """Calls per round so that one round of ``fn`` takes about ``seconds``."""
    for _ in range(3):
        fn()
    t = _time(fn, 5)
    return max(5, int(seconds / max(t, 1e-7)))


def network_cases(rounds: int, batches: list[int]) -> None:
    """tdrl's plain networks (tensor in, tensor out) against the same layers written by hand.

    ConvNet: tdrl's ``ConvNet`` against a hand-written forward calling the same
    ``nn.Conv2d`` layers (``torch modules``) and against ``F.conv2d`` on the same
    weights (``torch functional``). NoisyLinear (noise on, RANDOM): against
    ``F.linear`` on ``mu + sigma * eps`` written out.
    """
    torch.manual_seed(0)
    conv = modules.ConvNet(in_features=4, num_cells=[16, 32], kernel_sizes=[8, 4], strides=[4, 2])
    c1, c2 = conv[0], conv[2]

    def conv_functional(x):
        x = F.elu(F.conv2d(x, c1.weight, c1.bias, stride=4))
        return F.elu(F.conv2d(x, c2.weight, c2.bias, stride=2)).flatten(-3)

    def conv_modules(x):
        return F.elu(c2(F.elu(c1(x)))).flatten(-3)

    noisy = modules.NoisyLinear(64, 64)

    def noisy_by_hand(x):
        w = noisy.weight_mu + noisy.weight_sigma * noisy.weight_epsilon
        b = noisy.bias_mu + noisy.bias_sigma * noisy.bias_epsilon
        return F.linear(x, w, b)

    cases = [
        ("ConvNet(4->16->32, k 8/4, s 4/2) 36x36", conv, [conv_modules, conv_functional],
         lambda b: torch.randn(b, 4, 36, 36)),
        ("NoisyLinear(64, 64), noise on", noisy, [noisy_by_hand], lambda b: torch.randn(b, 64)),
    ]
    print(
        f"{'network (tensor in, tensor out)':38s} {'batch':>5s} {'tdrl us':>10s} "
        f"{'torch us':>10s}  ratio to torch (modules / functional)"
    )
    with set_exploration_type(ExplorationType.RANDOM), torch.no_grad():
        for name, ours, bases, make in cases:
            for b in batches:
                x = make(b)
                for base in bases:
                    torch.testing.assert_close(ours(x), base(x))
                fns = [lambda x=x, m=ours: m(x), *[lambda x=x, f=f: f(x) for f in bases]]
                iters = _calibrated_iters(fns[0])
                t_ours, *t_bases = compare(fns, iters, rounds)
                cols = " / ".join(f"{t * 1e6:.1f}" for t in t_bases)
                rs = " / ".join(f"{t_ours / t:.2f}" for t in t_bases)
                print(f"{name:38s} {b:5d} {t_ours * 1e6:10.1f} {cols:>10s}  {rs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument(
        "--baseline-rev",
        default=None,
        help="also time tdrl as of this git revision, interleaved in the same rounds",
    )
    parser.add_argument(
        "--networks-only",
        action="store_true",
        help="only time the plain networks (ConvNet, NoisyLinear) against hand-written torch",
    )
    parser.add_argument(
        "--paths",
        action="store_true",
        help="also time the calling paths added for TorchRL compatibility against the td call",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.networks_only:
        network_cases(args.rounds, args.batches)
        return

    nets = Nets()
    sides = {"tdrl": tdrl_cases(modules, data, nets)}
    if args.baseline_rev:
        base_modules, base_data = load_baseline(args.baseline_rev)
        sides[args.baseline_rev[:10]] = tdrl_cases(base_modules, base_data, nets)
    bases = torch_cases(nets)
    print(
        f"torch {torch.__version__}, 1 thread, median of {args.rounds} rounds x {args.iters} calls"
    )
    head = "".join(f"{k + ' us':>14s}" for k in sides)
    ratios = "".join(f"{'/' if i else ''}{k}" for i, k in enumerate(sides))
    print(f"{'case':38s} {'batch':>5s}{head} {'torch us':>9s}  ratio to torch ({ratios})")
    with set_exploration_type(ExplorationType.RANDOM), torch.no_grad():
        for i, (name, base) in enumerate(zip(NAMES, bases)):
            for b in args.batches:
                x = torch.randn(b, 4)
                bs = torch.Size([b])
                calls = []
                for cases in sides.values():

                    def ours(module=cases[i], x=x, bs=bs):
                        return module(TensorDict({"observation": x}, batch_size=bs))

                    calls.append(ours)
                times = compare([*calls, lambda base=base, x=x: base(x)], args.iters, args.rounds)
                *t_ours, t_base = times
                cols = "".join(f"{t * 1e6:14.1f}" for t in t_ours)
                rs = " / ".join(f"{t / t_base:.2f}" for t in t_ours)
                print(f"{name:38s} {b:5d}{cols} {t_base * 1e6:9.1f}  {rs}")

    with torch.no_grad():
        recurrent_cases(args.iters, args.rounds, args.batches)
        multiagent_cases(args.iters, args.rounds, args.batches)

    if args.paths:
        new_paths(nets, args.iters, args.rounds)

    network_cases(args.rounds, args.batches)

    # reference: tensordict's generic module on the same Linear
    x = torch.randn(1, 4)
    tdm = TensorDictModule(nets.l1, in_keys=["observation"], out_keys=["hidden"])
    t_tdm, t_lin = compare(
        [lambda: tdm(TensorDict({"observation": x}, batch_size=[1])), lambda: nets.l1(x)],
        args.iters,
        5,
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
