"""What ``import tdrl`` costs beyond ``import tensordict`` (the issue's bar: <= 0.2 s).

Run: ``.venv/bin/python benchmarks/import_time.py`` (``--runs N``, ``--json``, ``--check``,
``--bytecode``).

Each run is a fresh interpreter (nothing cached in ``sys.modules``) that imports
``tensordict`` (and with it torch) and then times, in the same process, the import of the
target with ``time.perf_counter``. Targets: ``tdrl`` itself, ``tdrl.modules`` (the module
stack that ``from tdrl.modules import ...`` loads) and ``tdrl.api`` (``tdrl.train`` /
``tdrl.load``' first use, without the recipes, gymnasium or the loggers). The interpreters of
the targets are interleaved and the median over ``--runs`` is printed, next to the median
wall time of a whole ``python -c "import tensordict"`` as the baseline it is added to, and
the ratio of the two. ``--check`` exits 1 when ``tdrl`` exceeds ``LIMIT_S``.

The children inherit the environment: with ``PYTHONDONTWRITEBYTECODE=1`` no ``.pyc`` is
written, so every tdrl module is compiled from source on each import (most of the module
stack's cost then). ``--bytecode`` drops that variable for the children and warms the
caches first: an installed package's normal case.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

LIMIT_S = 0.2
TARGETS = ("tdrl", "tdrl.modules", "tdrl.api")
PROBE = (
    "import time, tensordict, importlib; t = time.perf_counter(); "
    "importlib.import_module({name!r}); print(time.perf_counter() - t)"
)


ENV = dict(os.environ)


def one_run(name: str) -> float:
    """Seconds to import ``name`` once ``tensordict`` is loaded, in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", PROBE.format(name=name)], check=True,
                         capture_output=True, text=True, env=ENV).stdout
    return float(out.strip().splitlines()[-1])


def baseline_run() -> float:
    """Wall seconds of a whole ``python -c "import tensordict"``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tensordict"], check=True, env=ENV)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if tdrl > {LIMIT_S} s")
    parser.add_argument("--bytecode", action="store_true",
                        help="children may write and read .pyc caches (warmed first)")
    args = parser.parse_args()
    if args.bytecode:
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        for name in TARGETS:
            one_run(name)
    cached = "PYTHONDONTWRITEBYTECODE" not in ENV
    times: dict[str, list[float]] = {name: [] for name in ("tensordict (wall)", *TARGETS)}
    for _ in range(args.runs):  # interleaved: the machine's load hits every target alike
        times["tensordict (wall)"].append(baseline_run())
        for name in TARGETS:
            times[name].append(one_run(name))
    medians = {name: statistics.median(v) for name, v in times.items()}
    base = medians["tensordict (wall)"]
    if args.json:
        print(json.dumps({"median_s": medians, "runs": args.runs, "limit_s": LIMIT_S,
                          "bytecode_cache": cached}))
    else:
        print(f"median of {args.runs} fresh interpreters each; bytecode cache "
              f"{'on' if cached else 'off (PYTHONDONTWRITEBYTECODE=1)'}")
        for name, value in medians.items():
            ratio = "" if name.endswith("(wall)") else f"  ({value / base:.1%} of tensordict's)"
            print(f"  {name:<20} {value * 1000:8.1f} ms{ratio}")
    return 1 if args.check and medians["tdrl"] > LIMIT_S else 0


if __name__ == "__main__":
    sys.exit(main())
