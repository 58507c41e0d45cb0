"""Per-call cost of the spec methods the modules call on their hot paths.

Run: ``.venv/bin/python benchmarks/specs.py`` (``--json`` for machine-readable output).

``project``, ``is_in``, ``rand`` and masked ``rand`` of the specs the modules use
(Bounded, Categorical, OneHot, MultiOneHot), at batch 1 and 256, each against hand-written
torch doing the same math (clamp / range test / randint / masked argmax) in the same run.
Timing is CPU time of this thread with one torch thread; rounds of spec and torch calls
are interleaved and the median round is kept. The printed ratio is spec time / torch time.
``TARGETS`` holds the ratio each case must stay under (checked with ``--check``).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from overhead import compare  # same interleaved-median timing as the module benchmark

from tdrl.data import Bounded, Categorical, MultiOneHot, OneHot

# spec time / hand-written torch time; the spec side also validates shapes, dtypes, NaN
TARGETS = {"project": 6.0, "is_in": 6.0, "rand": 6.0, "masked rand": 6.0}


def cases(bs: int) -> list[tuple[str, str, Callable[[], object], Callable[[], object]]]:
    """(spec, method, spec call, torch call) for batch size ``bs``."""
    n, d = 6, 4
    bounded = Bounded(-1.0, 1.0, shape=(d,))
    lo, hi = bounded.low, bounded.high
    xb = torch.randn(bs, d)
    cat = Categorical(n)
    xc = torch.randint(-2, n + 2, (bs,))
    xc_in = torch.randint(0, n, (bs,))
    onehot = OneHot(n)
    xo = torch.randn(bs, n)
    xo_in = F.one_hot(torch.randint(0, n, (bs,)), n).bool()
    mask = torch.rand(bs, n) > 0.3
    mask[:, 0] = True
    masked_cat = Categorical(n, shape=(bs,), mask=mask)
    masked_oh = OneHot(n, shape=(bs, n), mask=mask)
    multi = MultiOneHot([3, 3])
    xm = torch.randn(bs, 6)

    def onehot_project_base():
        return F.one_hot(xo.argmax(-1), n).bool()

    def masked_base():
        return torch.rand(bs, n).masked_fill_(~mask, -1.0).argmax(-1)

    return [
        ("Bounded", "project", lambda: bounded.project(xb), lambda: xb.clamp(lo, hi)),
        ("Bounded", "is_in", lambda: bounded.is_in(xb),
         lambda: bool(((xb >= lo) & (xb <= hi)).all())),
        ("Bounded", "rand", lambda: bounded.rand((bs,)),
         lambda: torch.rand(bs, d) * (hi - lo) + lo),
        ("Categorical", "project", lambda: cat.project(xc), lambda: xc.clamp(0, n - 1)),
        ("Categorical", "is_in", lambda: cat.is_in(xc_in),
         lambda: bool(((xc_in >= 0) & (xc_in < n)).all())),
        ("Categorical", "rand", lambda: cat.rand((bs,)), lambda: torch.randint(n, (bs,))),
        ("Categorical", "masked rand", lambda: masked_cat.rand(), masked_base),
        ("OneHot", "project", lambda: onehot.project(xo), onehot_project_base),
        ("OneHot", "is_in", lambda: onehot.is_in(xo_in), lambda: bool((xo_in.sum(-1) == 1).all())),
        ("OneHot", "rand", lambda: onehot.rand((bs,)),
         lambda: F.one_hot(torch.randint(n, (bs,)), n).bool()),
        ("OneHot", "masked rand", lambda: masked_oh.rand(),
         lambda: F.one_hot(masked_base(), n).bool()),
        ("MultiOneHot", "project", lambda: multi.project(xm),
         lambda: torch.cat([F.one_hot(b.argmax(-1), 3) for b in xm.split([3, 3], -1)], -1).bool()),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--check", action="store_true", help="exit 1 if a ratio misses TARGETS")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    for bs in (1, 256):
        for spec, method, ours, base in cases(bs):
            t_ours, t_base = compare(ours, base, args.iters, args.rounds)
            rows.append({"spec": spec, "method": method, "batch": bs, "us": t_ours * 1e6,
                         "torch_us": t_base * 1e6, "ratio": t_ours / t_base})
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"{'spec':<12} {'method':<12} {'batch':>5} {'spec us':>9} {'torch us':>9} {'ratio':>6}")
        for r in rows:
            print(f"{r['spec']:<12} {r['method']:<12} {r['batch']:>5} {r['us']:>9.1f} "
                  f"{r['torch_us']:>9.1f} {r['ratio']:>6.2f}")
    missed = [r for r in rows if r["ratio"] > TARGETS[r["method"]]]
    if args.check and missed:
        for r in missed:
            print(f"MISSED: {r['spec']}.{r['method']} batch {r['batch']}: ratio "
                  f"{r['ratio']:.2f} > {TARGETS[r['method']]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
